"""An export job's state, kept in storage (record kind ``export-job``) so that any worker
answers its status and a restarted server resumes it where its last batch ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from fhir_server import jsonbytes
from fhir_server.bulk.request import ExportRequest

KIND = "export-job"
RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass(slots=True)
class Output:
    type: str
    name: str  # the file's name inside the job's folder
    count: int


@dataclass(slots=True)
class Job:
    id: str
    client: str  # the client that started it ("" with auth off)
    request_url: str
    request: ExportRequest
    mark: int  # the storage's snapshot mark at kick-off
    transaction_time: str
    created_ms: int
    expires_ms: int
    secret: str  # hex; keys the pseudonyms of a de-identified export
    status: str = RUNNING
    part: int = 0  # the type being walked (index into request.types)
    after: int = 0  # its position
    file_number: int = 1  # the open file: <type>-<number>.ndjson
    file_bytes: int = 0  # what it holds (a resumed job cuts it back to this)
    file_count: int = 0
    outputs: list[Output] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # OperationOutcome texts
    written: int = 0
    failure: str = ""
    user: str = ""  # the fhirUser it reads for (its tier, applied as it runs); "": no user
    patient: str = ""  # a patient/ token's patient
    break_glass: bool = False

    def to_bytes(self) -> bytes:
        return jsonbytes.dumps(asdict(self))

    @classmethod
    def from_bytes(cls, value: bytes) -> Job:
        data: dict[str, Any] = orjson.loads(value)
        data["request"] = ExportRequest(**data["request"])
        data["outputs"] = [Output(**o) for o in data["outputs"]]
        return cls(**data)

    def open_file(self, rtype: str) -> str:
        return f"{rtype}-{self.file_number}.ndjson"
