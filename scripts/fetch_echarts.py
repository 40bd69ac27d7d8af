"""Fetch Apache ECharts from npm into ``fhir_server/web/vendor/`` (the dashboard's charts,
served by the server itself: hospitals' networks are often closed, so no CDN).

``python scripts/fetch_echarts.py`` runs ``npm pack echarts@VERSION`` and keeps
``dist/echarts.min.js`` and the licence; the files are committed, so a clone and the wheel
need no network.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from pathlib import Path

VERSION = "6.1.0"
OUT = Path(__file__).resolve().parent.parent / "fhir_server" / "web" / "vendor"
KEPT = {"package/dist/echarts.min.js": "echarts.min.js", "package/LICENSE": "echarts-LICENSE",
        "package/NOTICE": "echarts-NOTICE"}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        name = subprocess.run(["npm", "pack", f"echarts@{VERSION}", "--silent"], cwd=folder,
                              check=True, capture_output=True, text=True).stdout.strip()
        OUT.mkdir(parents=True, exist_ok=True)
        with tarfile.open(Path(folder) / name.splitlines()[-1]) as archive:
            for member, kept in KEPT.items():
                source = archive.extractfile(member)
                if source is not None:
                    (OUT / kept).write_bytes(source.read())
    print(f"wrote echarts {VERSION} to {OUT}")


if __name__ == "__main__":
    main()
