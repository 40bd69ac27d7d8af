"""The server's own signing key (access tokens): an EC P-256 key made on first start and
kept in storage, so every worker and every restart signs and verifies with the same key."""

from __future__ import annotations

import orjson
from joserfc.jwk import ECKey

from fhir_server import jsonbytes
from fhir_server.storage.port import Storage

KIND, NAME = "server-key", "access-tokens"
ALGORITHM = "ES256"


async def server_key(storage: Storage) -> ECKey:
    """The key in storage; made and kept first if there is none (of several workers
    starting together, the first to keep one wins and all use it)."""
    stored = await storage.get_record(KIND, NAME)
    if stored is None:
        made = ECKey.generate_key("P-256", auto_kid=True)
        await storage.put_record(KIND, NAME, jsonbytes.dumps(made.as_dict(private=True)),
                                 only_new=True)
        stored = await storage.get_record(KIND, NAME)
        assert stored is not None
    return ECKey.import_key(orjson.loads(stored))
