"""Reads and searches with auth, access tiers and the audit of every access on, as a ratio
to the same requests with auth off (issue 15), through the ASGI app in this process (no
HTTP, no load generator on the two cores), and the cost of verifying a user token.

``python3 benchmarks/bench_tiers.py [--patients 5000]`` builds an alliance of that many
patients, four Observations each (one in ``--own-every`` (100) of the patients is the
``own-patients`` user's, one in ``--org-every`` (3) the organisation's), then measures
requests/s with 8 requests in flight: auth off; users of each tier with development
tokens (``FHIR_DEV_TOKENS``), with and without the audit of every access; then how fast
the AuditEvents the runs stored are indexed for search (the server does that in quiet
moments).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import orjson
from bench_core import start, stop, wait_for, wrk
from joserfc import jwt
from joserfc.jwk import RSAKey
from server_process import free_port

from fhir_server.app import build_app, build_service, open_storage
from fhir_server.auth.server_key import server_key
from fhir_server.auth.tokens import mint_user_token
from fhir_server.cli import main as cli
from fhir_server.config import Settings
from fhir_server.search.ucum import canonical_unit

TIER = "http://alliance-fhir.org/fhir/StructureDefinition/access-tier"
CONCURRENCY = 8  # requests in flight, as wrk -c8 sends them (audit records group-commit)
SEARCHES = ["Patient?_count=20", "Observation?status=final&_count=20",
            "Observation?subject=Patient/p0&_include=Observation:subject",
            "Patient?_revinclude=Observation:subject&_count=10"]


def write_alliance(folder: Path, patients: int, org_every: int = 3,
                   own_every: int = 100) -> Path:
    def role(id: str, org: str, tier: str) -> dict:
        return {"resourceType": "PractitionerRole", "id": id,
                "practitioner": {"reference": "Practitioner/pa"},
                "organization": {"reference": f"Organization/{org}"},
                "extension": [{"url": TIER, "valueCode": tier}]}
    rows = [{"resourceType": "Organization", "id": "hosp", "name": "牵头医院"},
            {"resourceType": "Organization", "id": "town", "name": "乡镇卫生院"},
            {"resourceType": "Practitioner", "id": "pa", "name": [{"family": "王"}]},
            role("own", "hosp", "own-patients"), role("org", "hosp", "organization"),
            role("all", "hosp", "alliance")]
    for i in range(patients):
        manager = "hosp" if i % org_every == 0 else "town"
        patient: dict = {"resourceType": "Patient", "id": f"p{i}", "gender": "female",
                         "managingOrganization": {"reference": f"Organization/{manager}"}}
        if i % own_every == 0:
            patient["generalPractitioner"] = [{"reference": "Practitioner/pa"}]
        rows.append(patient)
        rows += [{"resourceType": "Observation", "id": f"o{i}-{k}", "status": "final",
                  "code": {"text": "血糖"}, "subject": {"reference": f"Patient/p{i}"},
                  "valueQuantity": {"value": 5 + k, "unit": "mmol/L"}} for k in range(4)]
    path = folder / "alliance.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in rows) + b"\n")
    return path


async def rate(settings: Settings, path: str, token: str, n: int) -> float:
    app = build_app(settings)
    await app.startup()  # type: ignore[attr-defined]
    url, _, query = path.partition("?")
    headers = [(b"host", b"bench")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "method": "GET", "path": f"/fhir/{url}",
             "query_string": query.encode(), "headers": headers, "scheme": "http"}
    statuses: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await app(scope, receive, send)  # warm: the user's patients listed once

    async def client() -> None:  # one of CONCURRENCY clients, each waiting for its answer
        for _ in range(n // CONCURRENCY):
            await app(scope, receive, send)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    await app.shutdown()  # type: ignore[attr-defined]
    assert set(statuses) == {200}, (path, statuses[:3])
    return n / elapsed


async def tokens(settings: Settings) -> dict[str, str]:
    storage = open_storage(settings)
    await storage.open()
    key = await server_key(storage)
    await storage.close()
    return {user: mint_user_token(key, f"PractitionerRole/{user}", "user/*.rs")
            for user in ("own", "org", "all")}


async def index_backlog(settings: Settings) -> tuple[int, float]:
    """The AuditEvents the runs left without index rows, indexed now: (how many, per s)."""
    service = build_service(settings)
    await service.open()
    started, done = time.perf_counter(), 0
    while count := await service.storage.index_deferred(500):
        done += count
    await service.close()
    return done, done / (time.perf_counter() - started)


SERVER_RUNS = [("auth off", {}, ""),
               ("user, tier alliance, access audit off",
                {"FHIR_AUTH": "smart", "FHIR_DEV_TOKENS": "true", "FHIR_AUDIT_ACCESS": "false"},
                "all"),
               *[(f"user, tier {user}, every access audited",
                  {"FHIR_AUTH": "smart", "FHIR_DEV_TOKENS": "true"}, user)
                 for user in ("all", "org", "own")]]


def over_http(db: Path, users: dict[str, str], workers: int, seconds: int) -> None:
    """The same comparison against a real server process (uvicorn), wrk -c8 one thread."""
    print(f"\nover HTTP: `alliance-fhir serve --workers {workers}`, wrk -t1 -c{CONCURRENCY} "
          f"-d{seconds}s\n| who | read by id req/s (ratio) | search mix req/s (ratio) |\n"
          "| --- | --- | --- |")
    base: dict[str, float] = {}
    for who, env, user in SERVER_RUNS:
        port = free_port()
        url = f"http://127.0.0.1:{port}/fhir"
        server = start([sys.executable, "-m", "fhir_server", "serve", "--port", str(port),
                        "--storage", f"sqlite:///{db}", "--workers", str(workers),
                        "--log-level", "warning"],
                       {"FHIR_METRICS": "false", "FHIR_ACCESS_LOG": "false", **env})
        headers = {"Authorization": f"Bearer {users[user]}"} if user else {}
        try:
            wait_for(f"{url}/metadata", settle=2)
            wrk(f"{url}/Patient/p0", 2, CONCURRENCY, headers=headers)  # warm
            reads = wrk(f"{url}/Patient/p0", seconds, CONCURRENCY, headers=headers)
            searches = statistics.mean(wrk(f"{url}/{p}", seconds, CONCURRENCY,
                                           headers=headers) for p in SEARCHES)
        finally:
            stop(server)
        base = base or {"read": reads, "search": searches}
        print(f"| {who} | {reads:,.0f} ({reads / base['read']:.2f}×) | "
              f"{searches:,.0f} ({searches / base['search']:.2f}×) |")


def verification_cost() -> float:
    """µs to verify one RS256 user token (signature and claims), as for each new token."""
    key = RSAKey.generate_key(2048, auto_kid=True)
    now = int(time.time())
    token = jwt.encode({"alg": "RS256", "kid": key.kid}, {
        "iss": "https://idp", "exp": now + 300, "fhirUser": "PractitionerRole/own",
        "scope": "user/*.rs"}, key, algorithms=["RS256"])
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        jwt.decode(token, key, algorithms=["RS256"])
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--org-every", type=int, default=3,
                        help="the organisation manages one patient in this many")
    parser.add_argument("--own-every", type=int, default=100,
                        help="the own-patients user is the GP of one patient in this many")
    parser.add_argument("--http", action="store_true",
                        help="also against a real server process with wrk")
    parser.add_argument("--only-http", action="store_true",
                        help="only against a real server process with wrk")
    parser.add_argument("--workers", type=int, default=1, help="server workers (--http)")
    parser.add_argument("--seconds", type=int, default=5, help="each wrk run (--http)")
    args = parser.parse_args()
    canonical_unit("mg")  # the UCUM registry built now, not in a thread during the first run
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "tiers.db"
        off = Settings(storage=f"sqlite:///{db}", metrics=False, access_log=False)
        started = time.perf_counter()
        assert cli(["load", str(write_alliance(Path(work), args.patients, args.org_every,
                                               args.own_every)), "--storage",
                    off.storage, "--quiet"]) == 0
        print(f"loaded {args.patients * 5:,} resources in {time.perf_counter() - started:.0f} s")
        on = replace(off, auth="smart", dev_tokens=True)
        users = asyncio.run(tokens(on))
        if args.http or args.only_http:
            over_http(db, users, args.workers, args.seconds)
        if args.only_http:
            return
        print("| who | read by id req/s (ratio) | search mix req/s (ratio) |\n| --- | --- | --- |")
        base: dict[str, float] = {}
        quiet = replace(on, audit_access=False)
        for who, settings, token in [
                ("auth off", off, ""),
                ("user, tier alliance, access audit off", quiet, users["all"]),
                *[(f"user, tier {user}, every access audited", on, users[user])
                  for user in ("all", "org", "own")]]:
            reads = statistics.median(asyncio.run(rate(settings, "Patient/p0", token,
                                                       args.reads)) for _ in range(3))
            searches = statistics.median(statistics.mean(
                asyncio.run(rate(settings, p, token, args.reads // 10)) for p in SEARCHES)
                for _ in range(3))
            base = base or {"read": reads, "search": searches}
            print(f"| {who} | {reads:,.0f} ({reads / base['read']:.2f}×) | "
                  f"{searches:,.0f} ({searches / base['search']:.2f}×) |")
        backlog, per_second = asyncio.run(index_backlog(on))
        print(f"\nindexing the {backlog:,} AuditEvents the runs left for quiet moments: "
              f"{per_second:,.0f} events/s")
    print(f"verifying an RS256 user token: {verification_cost():.0f} µs (once per token; "
          "then cached until it expires)")


if __name__ == "__main__":
    main()
