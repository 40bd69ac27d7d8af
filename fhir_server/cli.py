"""Command line: ``alliance-fhir serve`` and ``alliance-fhir load``."""

from __future__ import annotations

import argparse
import asyncio
import copy
import ipaddress
import os
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from fhir_server import __version__
from fhir_server.cli_audit import add_audit_commands
from fhir_server.cli_clients import add_client_commands
from fhir_server.cli_migrate import add_migrate_command
from fhir_server.cli_token import add_token_command
from fhir_server.config import Settings, SettingsError
from fhir_server.core.errors import FhirError
from fhir_server.core.jsonio import dumps, parse_json
from fhir_server.loader import load_paths, reindex_storage
from fhir_server.outcome import has_errors, operation_outcome
from fhir_server.package import AlliancePackage, PackageError, demo_folder
from fhir_server.rest.observe import METRICS_DIR
from fhir_server.rest.protocol import GuardedHttpToolsProtocol
from fhir_server.startup import STARTUP_REPORT, failures
from fhir_server.storage.port import StorageError
from fhir_server.validation.check import Checks, check_resource

DEMO_MARK = "Organization/lead"  # the demo alliance's first resource: loaded once


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env(host=args.host, port=args.port, storage=args.storage,
                                 workers=args.workers, durability=args.durability,
                                 auth=args.auth)
    if args.demo and "FHIR_REQUIRE_PROFILES" not in os.environ:
        settings = replace(settings, require_profiles="*")  # the demo enforces the profiles
    # Before the workers start: migrate, install the alliance package, load the demo.
    demo = [demo_folder()] if args.demo else []
    try:
        summary = asyncio.run(load_paths(settings, demo, quiet=not demo,
                                         unless_present=DEMO_MARK))
    except (StorageError, OSError, ValueError) as error:
        return _cannot_start(str(error))
    for field in fields(Settings):  # workers are separate processes: hand settings on
        os.environ["FHIR_" + field.name.upper()] = str(getattr(settings, field.name))
    shared = tempfile.TemporaryDirectory(prefix="alliance-serve-")
    report = Path(shared.name) / "startup-failures"
    os.environ[STARTUP_REPORT] = str(report)
    if settings.workers > 1 and settings.metrics:  # any worker answers /metrics for all
        os.environ[METRICS_DIR] = shared.name
    package = AlliancePackage.load(settings)
    if settings.auth == "none" and not _loopback(settings.host):
        print(f"alliance-fhir: WARNING: listening on {settings.host} with authorization off: "
              "anyone who reaches the port reads and writes every record (use --auth smart)",
              file=sys.stderr, flush=True)
    print(f"alliance-fhir-server {__version__}: FHIR R4 base "
          f"http://{settings.host}:{settings.port}{settings.base_path}, storage "
          f"{settings.storage}, package {package.name} {package.version}, "
          f"{settings.workers} worker(s){'; demo: ' + summary.note if summary.note else ''}",
          file=sys.stderr, flush=True)
    with shared:  # removed when the server stops
        uvicorn.run("fhir_server.app:build_app", factory=True, host=settings.host,
                    port=settings.port, workers=settings.workers, log_level=args.log_level,
                    log_config=log_config(args.log_level), access_log=False,
                    server_header=False, http=GuardedHttpToolsProtocol,
                    limit_concurrency=settings.max_connections)
        reasons = failures(report)  # a worker that could not start stops them all
    return _cannot_start(reasons) if reasons else 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _cannot_start(reason: str) -> int:
    print(f"alliance-fhir: cannot start: {reason}", file=sys.stderr)
    return 2


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the server's own loggers: ``fhir_server`` (text) and
    ``fhir_server.access`` (one JSON line per request at info, on standard output)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["line"] = {"format": "%(message)s"}
    config["handlers"]["line"] = {"class": "logging.StreamHandler", "formatter": "line",
                                  "stream": "ext://sys.stdout"}
    config["loggers"]["fhir_server"] = {"handlers": ["default"], "level": level.upper(),
                                        "propagate": False}
    config["loggers"]["fhir_server.access"] = {"handlers": ["line"], "level": level.upper(),
                                               "propagate": False}
    return config


def _load(args: argparse.Namespace) -> int:
    settings = Settings.from_env(storage=args.storage,
                                 check_references=False if args.no_check_references else None)
    summary = asyncio.run(load_paths(settings, [Path(p) for p in args.paths],
                                     batch_size=args.batch_size, quiet=args.quiet))
    print(summary.line())
    return 1 if summary.failed else 0


def _reindex(args: argparse.Namespace) -> int:
    count = asyncio.run(reindex_storage(Settings.from_env(storage=args.storage)))
    print(f"reindexed {count} resources")
    return 0


def _validate(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    package = AlliancePackage.load(settings)
    checks = Checks.from_package(package.profiles, package.terminology, (),
                                 settings.allow_any_extension)
    failed = 0
    for name in args.files:
        try:
            document = parse_json(Path(name).read_bytes(), "file")
        except (OSError, FhirError) as error:
            print(f"{name}: {error}")
            failed += 1
            continue
        issues = check_resource(checks, document, None, args.profile)  # a Bundle as a Bundle
        failed += has_errors(issues)
        verdict = "errors" if has_errors(issues) else "valid"
        print(f"{name}: {verdict}")
        if issues:
            print(dumps(operation_outcome(issues), pretty=True).decode())
    return 1 if failed else 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="alliance-fhir", description=__doc__)
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", help="bind address (FHIR_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (FHIR_PORT, default 8080)")
    serve.add_argument("--storage", help="sqlite:///path.db (FHIR_STORAGE)")
    serve.add_argument("--workers", type=int, help="worker processes (FHIR_WORKERS, default 1)")
    serve.add_argument("--durability", choices=["normal", "full"],
                       help="normal: survive kill -9; full: also power loss")
    serve.add_argument("--demo", action="store_true", help="load the demo alliance first")
    serve.add_argument("--auth", choices=["none", "smart"],
                       help="smart: every FHIR endpoint needs a SMART Backend Services "
                            "token (FHIR_AUTH, default none)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug", "trace"],
                       help="server log level (default info); request lines are logged at "
                            "info (FHIR_ACCESS_LOG=false switches them off)")
    serve.set_defaults(run=_serve)
    load = commands.add_parser("load", help="load Bundles / NDJSON files / folders")
    load.add_argument("paths", nargs="+")
    load.add_argument("--storage", help="sqlite:///path.db (FHIR_STORAGE)")
    load.add_argument("--batch-size", type=int, default=500, help="resources per transaction")
    load.add_argument("--no-check-references", action="store_true",
                      help="skip referential integrity checks (faster bulk loads)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.set_defaults(run=_load)
    check = commands.add_parser("validate", help="validate resources or Bundles in files")
    check.add_argument("files", nargs="+")
    check.add_argument("--profile", action="append", default=[],
                       help="also validate against this alliance profile (canonical URL)")
    check.set_defaults(run=_validate)
    rebuild = commands.add_parser("reindex", help="rebuild the search index (as $reindex)")
    rebuild.add_argument("--storage", help="sqlite:///path.db (FHIR_STORAGE)")
    rebuild.set_defaults(run=_reindex)
    add_client_commands(commands)
    add_token_command(commands)
    add_audit_commands(commands)
    add_migrate_command(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)  # type: ignore[no-any-return]
    except (PackageError, SettingsError) as error:
        return _cannot_start(str(error))


if __name__ == "__main__":
    sys.exit(main())
