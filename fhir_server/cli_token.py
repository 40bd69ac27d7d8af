"""``alliance-fhir token --user PractitionerRole/ID --scope "user/*.rs"``: a user access
token for local development, signed by the server's own key (kept in storage). A server
accepts it only with ``FHIR_DEV_TOKENS=true``; in production users' tokens come from the
alliance's identity provider (``FHIR_OIDC_ISSUER``)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fhir_server.app import open_storage
from fhir_server.auth.oidc import TokenRefused
from fhir_server.auth.server_key import server_key
from fhir_server.auth.tokens import mint_user_token
from fhir_server.config import Settings


def _token(args: argparse.Namespace) -> int:
    async def run() -> str:
        storage = open_storage(Settings.from_env(storage=args.storage))
        await storage.open()
        try:
            key = await server_key(storage)
        finally:
            await storage.close()
        return mint_user_token(key, args.user, " ".join(args.scope.split()), args.patient,
                               args.lifetime)
    try:
        print(asyncio.run(run()))
    except TokenRefused as error:
        print(f"alliance-fhir: {error}")
        return 2
    return 0


def add_token_command(commands: Any) -> None:
    token = commands.add_parser("token", help="mint a development user token "
                                              "(accepted with FHIR_DEV_TOKENS=true)")
    token.add_argument("--user", required=True,
                       help="the user's fhirUser: PractitionerRole/ID or Practitioner/ID")
    token.add_argument("--scope", default="user/*.cruds",
                       help='SMART user/ or patient/ scopes (default "user/*.cruds")')
    token.add_argument("--patient", default="", help="the patient patient/ scopes are bound to")
    token.add_argument("--lifetime", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument("--storage", help="sqlite:///path.db (FHIR_STORAGE): the server's key")
    token.set_defaults(run=_token)
