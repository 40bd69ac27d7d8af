"""Fetch and cache the official FHIR R4 package ``hl7.fhir.r4.examples@4.0.1`` (CC0).

Used by the generator scripts, the tests and the benchmarks, never by the running server.
The package is fetched once with ``npm pack`` into ``$FHIR_R4_CACHE`` (default
``~/.cache/alliance-fhir``) and unpacked there; later calls reuse the folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson

PACKAGE = "hl7.fhir.r4.examples"
VERSION = "4.0.1"


def cache_root() -> Path:
    """Where unpacked packages live."""
    return Path(os.environ.get("FHIR_R4_CACHE", Path.home() / ".cache" / "alliance-fhir"))


def package_dir() -> Path:
    """The unpacked ``package/`` folder of the R4 examples, fetching it on first use."""
    return npm_package(PACKAGE, VERSION)


def npm_package(name: str, version: str) -> Path:
    """The unpacked ``package/`` folder of an npm package, fetched with ``npm pack`` once."""
    target = cache_root() / f"{name}-{version}"
    folder = target / "package"
    if (folder / "package.json").exists():
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed once to fetch {name}@{version}")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target) as work:
        subprocess.run(
            [npm, "pack", f"{name}@{version}", "--silent"],
            cwd=work, check=True, capture_output=True, timeout=600,
        )
        tgz = next(Path(work).glob("*.tgz"))
        with tarfile.open(tgz) as archive:
            archive.extractall(work, filter="data")
        Path(work, "package").rename(folder)
    return folder


def load(name: str) -> dict:
    """One JSON file of the package, by file name."""
    return orjson.loads((package_dir() / name).read_bytes())


def bundle_resources(name: str) -> Iterator[dict]:
    """The resources inside one of the package's definition Bundles."""
    for entry in load(name).get("entry", []):
        yield entry["resource"]


def examples(resource_type: str) -> Iterator[Path]:
    """Paths of the official examples of one resource type (``Type-id.json``)."""
    yield from sorted(package_dir().glob(f"{resource_type}-*.json"))
