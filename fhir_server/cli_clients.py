"""``alliance-fhir clients add|list|remove``: the SMART backend clients in storage (a
running server sees the change at its next token request)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from fhir_server.app import open_storage
from fhir_server.auth.clients import Client, ClientError, ClientRegistry
from fhir_server.auth.jwks import KeysError
from fhir_server.config import Settings

T = TypeVar("T")


def _with_registry(storage_url: str | None,
                   job: Callable[[ClientRegistry], Awaitable[T]]) -> T:
    async def run() -> T:
        storage = open_storage(Settings.from_env(storage=storage_url))
        await storage.open()
        try:
            return await job(ClientRegistry(storage))
        finally:
            await storage.close()
    return asyncio.run(run())


def _jwks(given: str) -> dict[str, Any]:
    """``--jwks``: a URL is kept as the client's JWKS URL, anything else read as a file."""
    if given.startswith(("https://", "http://")):
        return {"jwks_url": given}
    try:
        return {"jwks": orjson.loads(Path(given).read_bytes())}
    except OSError as error:
        raise ClientError(f"cannot read {given}: {error.strerror}") from None
    except orjson.JSONDecodeError as error:
        raise ClientError(f"{given} is not JSON: {error}") from None


def _add(args: argparse.Namespace) -> int:
    try:
        client = Client(args.client_id, " ".join(args.scope.split()), **_jwks(args.jwks),
                        deidentified_only=args.deidentified_only)
    except KeysError as error:
        print(f"alliance-fhir: {error}")
        return 2
    _with_registry(args.storage, lambda registry: registry.add(client))
    print(f"registered {client.id}: {client.scope}"
          f"{' (de-identified export only)' if client.deidentified_only else ''}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for client in _with_registry(args.storage, lambda registry: registry.all()):
        keys = client.jwks_url or f"{len((client.jwks or {}).get('keys', [None]))} key(s)"
        print(f"{client.id}\t{client.scope}\t{keys}"
              f"{chr(9) + 'de-identified only' if client.deidentified_only else ''}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    if _with_registry(args.storage, lambda registry: registry.remove(args.client_id)):
        print(f"removed {args.client_id}")
        return 0
    print(f"alliance-fhir: no client {args.client_id!r}")
    return 1


def add_client_commands(commands: Any) -> None:
    clients = commands.add_parser("clients", help="SMART backend clients (auth smart)")
    actions = clients.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="register a client (or replace its registration)")
    add.add_argument("client_id")
    add.add_argument("--jwks", required=True, help="its public keys: a JWKS file or URL")
    add.add_argument("--scope", required=True, help='scopes it may get: "system/*.rs …"')
    add.add_argument("--deidentified-only", action="store_true",
                     help="bulk export only, always de-identified")
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="the registered clients")
    listing.set_defaults(run=_list)
    remove = actions.add_parser("remove", help="remove a client")
    remove.add_argument("client_id")
    remove.set_defaults(run=_remove)
    for action in (add, listing, remove):
        action.add_argument("--storage", help="sqlite:///path.db (FHIR_STORAGE)")
