"""The alliance package: profiles, extensions, SearchParameters and terminology.

It ships inside the wheel (``fhir_server/data``, read with :mod:`importlib.resources`);
``FHIR_PROFILES_DIR`` / ``FHIR_TERMINOLOGY_DIR`` point at other folders instead. A folder
that is missing, unreadable or holds a file that is not a FHIR resource stops start-up with
:class:`PackageError` naming it: a server never runs without the rules it claims to enforce.
Every resource of the package is marked (a ``meta.tag`` and ``meta.source``) so that users
can tell it from their own once it is installed into storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources as package_files
from pathlib import Path

import orjson

from fhir_server.config import Settings
from fhir_server.types import Resource

PACKAGE_TAG_SYSTEM = "http://alliance-fhir.org/fhir/CodeSystem/package-source"
MANIFESTS = ("package.json", ".index.json")  # FHIR package manifests, not resources


class PackageError(Exception):
    """The configured alliance package cannot be read; the message names the file."""


def packaged_folder(name: str) -> Path:
    """A folder of the package data inside the installed ``fhir_server`` (``profiles``,
    ``terminology`` or ``demo``)."""
    return Path(str(package_files.files("fhir_server").joinpath("data", name)))


def profiles_folder(settings: Settings) -> Path:
    return Path(settings.profiles_dir) if settings.profiles_dir else packaged_folder("profiles")


def terminology_folder(settings: Settings) -> Path:
    return (Path(settings.terminology_dir) if settings.terminology_dir
            else packaged_folder("terminology"))


def demo_folder() -> Path:
    """The demo alliance (``serve --demo``)."""
    return packaged_folder("demo")


def read_folder(folder: Path, what: str) -> list[Resource]:
    """Every resource of a package folder, in file name order; PackageError when the folder
    or one of its files cannot be read as a FHIR resource."""
    if not folder.is_dir():
        raise PackageError(f"The {what} folder {folder} does not exist or is not a folder")
    try:
        paths = sorted(p for p in folder.glob("*.json") if p.name not in MANIFESTS)
    except OSError as error:
        raise PackageError(f"The {what} folder {folder} cannot be read: {error}") from None
    resources = []
    for path in paths:
        try:
            resource = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as error:
            raise PackageError(f"{path} ({what}) cannot be read: {error}") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str) \
                or not isinstance(resource.get("id"), str):
            raise PackageError(f"{path} ({what}) is not a FHIR resource with an id")
        resources.append(resource)
    return resources


@dataclass(frozen=True, slots=True)
class AlliancePackage:
    """The package's resources, read once at start-up."""

    name: str
    version: str
    profiles: list[Resource]  # StructureDefinitions and SearchParameters
    terminology: list[Resource]  # CodeSystems, ValueSets, ConceptMaps

    @classmethod
    def load(cls, settings: Settings) -> AlliancePackage:
        folder = profiles_folder(settings)
        profiles = read_folder(folder, "profiles (FHIR_PROFILES_DIR)")
        terminology = read_folder(terminology_folder(settings),
                                  "terminology (FHIR_TERMINOLOGY_DIR)")
        manifest = folder / "package.json"
        try:
            meta = orjson.loads(manifest.read_bytes()) if manifest.exists() else {}
        except (OSError, orjson.JSONDecodeError) as error:
            raise PackageError(f"{manifest} cannot be read: {error}") from None
        return cls(str(meta.get("name", "alliance.fhir.core")), str(meta.get("version", "0")),
                   profiles, terminology)

    def of_type(self, resource_type: str) -> list[Resource]:
        return [r for r in self.profiles + self.terminology
                if r["resourceType"] == resource_type]

    def marked(self) -> list[Resource]:
        """Copies of every resource, tagged as this package's content."""
        tag = {"system": PACKAGE_TAG_SYSTEM, "code": self.name,
               "display": f"{self.name} {self.version}"}
        source = f"http://alliance-fhir.org/fhir/package/{self.name}/{self.version}"
        out = []
        for resource in self.profiles + self.terminology:
            meta = resource.get("meta") or {}
            kept = {k: v for k, v in meta.items()
                    if k not in ("versionId", "lastUpdated", "source", "tag")}
            tags = [t for t in meta.get("tag", []) if t.get("system") != PACKAGE_TAG_SYSTEM]
            out.append({**resource, "meta": {**kept, "source": source, "tag": [*tags, tag]}})
        return out
