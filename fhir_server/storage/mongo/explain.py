"""``FHIR_MONGO_EXPLAIN=true``: the plan MongoDB chose for each query of a search, logged as
one JSON line (logger ``fhir_server.mongo.explain``), so that a slow search can be shown:
the command, the plan's stages with their indexes (``SORT > FETCH > IXSCAN(idx_token)``),
keys and documents examined, documents returned and milliseconds."""

from __future__ import annotations

import logging
from typing import Any

from bson import json_util

from fhir_server.storage.mongo.layout import Database

log = logging.getLogger("fhir_server.mongo.explain")


async def explain(db: Database, command: dict[str, Any]) -> None:
    """Log the executed plan of ``command`` (a ``find``, ``aggregate`` or ``count``)."""
    found = await db.command("explain", command, verbosity="executionStats")
    log.info(json_util.dumps(summary(command, found)))


def summary(command: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """The parts of an explain answer that show whether a query used its indexes."""
    cursor: dict[str, Any] = next((stage["$cursor"] for stage in found.get("stages", ())
                   if "$cursor" in stage), {})
    planner = found.get("queryPlanner") or cursor.get("queryPlanner") or {}
    stats = found.get("executionStats") or cursor.get("executionStats") or {}
    return {"command": command, "plan": _stages(planner.get("winningPlan", {})),
            "keysExamined": stats.get("totalKeysExamined"),
            "docsExamined": stats.get("totalDocsExamined"),
            "returned": stats.get("nReturned"), "ms": stats.get("executionTimeMillis")}


def _stages(plan: dict[str, Any]) -> str:
    """``SORT > FETCH > IXSCAN(by_type)``; branches (OR) in brackets."""
    if not plan:
        return ""
    name = plan.get("stage", "?") + (f"({plan['indexName']})" if "indexName" in plan else "")
    if "inputStages" in plan:
        return f"{name}[{', '.join(_stages(p) for p in plan['inputStages'])}]"
    inner = _stages(plan.get("inputStage", {}))
    return f"{name} > {inner}" if inner else name
