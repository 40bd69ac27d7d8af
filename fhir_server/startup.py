"""Start-up failures of worker processes, told to the parent that started them.

uvicorn's supervisor stops when a worker fails its start-up but returns normally; each
worker therefore writes why it could not start to the file named by
``FHIR_STARTUP_REPORT`` (set by ``alliance-fhir serve``), and the parent exits non-zero
with that reason.
"""

from __future__ import annotations

import os
from pathlib import Path

STARTUP_REPORT = "FHIR_STARTUP_REPORT"


def report_failure(error: BaseException) -> None:
    """Append this worker's reason to the parent's report file, if there is one."""
    path = os.environ.get(STARTUP_REPORT)
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(f"worker {os.getpid()}: {type(error).__name__}: {error}\n")


def failures(path: Path) -> str:
    """What the workers reported ("" when every one started)."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
