"""Settings from the command line, the environment (``FHIR_*``) and defaults."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable; each field ``x`` also reads ``FHIR_X`` from the environment."""

    host: str = "127.0.0.1"
    port: int = 8080
    storage: str = "sqlite:///./alliance-fhir.db"
    workers: int = 1
    durability: str = "normal"  # "full": survive power loss (fsync every commit)
    base_path: str = "/fhir"
    max_body_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64  # nesting of objects and arrays in a request body (at most 200)
    max_bundle_entries: int = 10_000  # entries of a transaction or batch Bundle
    check_references: bool = True
    allow_referenced_delete: bool = False
    default_count: int = 20
    max_count: int = 1000
    include_limit: int = 1000  # _include/_revinclude results per page; beyond: a warning
    conditional_delete_max: int = 100  # a conditional DELETE matching more answers 412
    timezone: str = "+08:00"  # for dates without a zone (index and query alike)
    profiles_dir: str = ""  # the alliance package's folder; empty: the one in the wheel
    terminology_dir: str = ""  # its terminology folder; empty: the one in the wheel
    require_profiles: str = ""  # types that must claim an alliance profile; "*": all profiled
    unique_identifiers: str = ("urn:oid:2.16.156.10011.1.3,"  # resident ID (GB 11643)
                               "http://alliance-fhir.org/fhir/sid/uscc")  # USCC (GB 32100)
    skip_unchanged_updates: bool = True  # an update equal to the current version: no version
    metrics: bool = True  # count and time requests for /metrics
    access_log: bool = True  # one JSON log line per request
    cors_origins: str = ""  # comma-separated origins allowed by CORS ("*": any); none by default
    header_timeout: float = 10.0  # seconds for a connection to send a request's headers
    read_timeout: float = 30.0  # seconds a request body may pause between chunks (else 408)
    max_connections: int = 1000  # concurrent connections per worker; beyond: 503
    rate_limit: float = 0.0  # requests per second per client address and worker; 0: off
    search_timeout: float = 30.0  # seconds a search may run (else 422 too-costly)
    mongo_explain: bool = False  # MongoDB: log the plan of each search query (a JSON line)
    admin_operations: bool = True  # $reindex (system administrators only once auth lands)
    expunge: bool = False  # $expunge: erase a resource and all its versions (PIPL art. 47)
    auth: str = "none"  # "smart": every FHIR endpoint needs a SMART Backend Services token
    token_lifetime: int = 300  # seconds an access token is valid
    oidc_issuer: str = ""  # users' identity providers (OpenID Connect), comma-separated
    oidc_jwks_url: str = ""  # their JWKS URLs in the same order; empty: from discovery
    oidc_audience: str = ""  # the aud users' tokens must carry; empty: not checked
    dev_tokens: bool = False  # accept user tokens minted by ``alliance-fhir token``
    default_tier: str = "own-patients"  # a user's tier when their PractitionerRole has none
    audit_access: bool = True  # with auth on: an AuditEvent for every request
    break_glass_roles: str = ""  # PractitionerRole.code codes that may break glass; "": any
    audit_retention_days: int = 183  # AuditEvents older are removed by ``audit purge``
    export_dir: str = ""  # $export files, a folder per job; empty: beside the SQLite file
    export_file_bytes: int = 256 * 1024 * 1024  # an output file is closed beyond this size
    export_expiry: int = 24 * 3600  # seconds a finished export and its files are kept
    export_max_jobs: int = 4  # exports running at once; beyond: 429
    export_batch: int = 1000  # resources read per step of an export (its memory)
    allow_any_extension: bool = False  # extensions defined nowhere known: allowed, not refused
    referral_sla: str = "stat=30m,asap=4h"  # green channel: time to accept, per priority
    referral_sweep_seconds: float = 30.0  # how often a worker looks for overdue referrals
    subscription_retries: int = 5  # failed deliveries before a Subscription is set in error
    subscription_retry_seconds: float = 1.0  # the first wait before a retry (then doubled)

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise SettingsError(f"FHIR_AUTH must be one of {', '.join(AUTH_MODES)}, "
                                f"not {self.auth!r}")
        if self.default_tier not in TIERS:
            raise SettingsError(f"FHIR_DEFAULT_TIER must be one of {', '.join(TIERS)}, "
                                f"not {self.default_tier!r}")

        self.referral_deadlines  # noqa: B018 (refuses a malformed FHIR_REFERRAL_SLA)

    @property
    def referral_deadlines(self) -> dict[str, int]:
        """``stat=30m,asap=4h`` -> seconds to accept, per priority (units s, m, h, d)."""
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        deadlines: dict[str, int] = {}
        for part in (p.strip() for p in self.referral_sla.split(",") if p.strip()):
            priority, _, amount = (x.strip() for x in part.partition("="))
            if priority not in ("stat", "asap", "urgent", "routine") or amount[-1:] not in units \
                    or not amount[:-1].isdigit():
                raise SettingsError(f"FHIR_REFERRAL_SLA: {part!r} is not "
                                    "priority=<number><s|m|h|d> (e.g. stat=30m,asap=4h)")
            deadlines[priority] = int(amount[:-1]) * units[amount[-1]]
        return deadlines

    @property
    def required_profile_types(self) -> list[str]:
        return [t.strip() for t in self.require_profiles.split(",") if t.strip()]

    @property
    def unique_systems(self) -> frozenset[str]:
        """Identifier systems whose values no two resources of one type may share."""
        return frozenset(s.strip() for s in self.unique_identifiers.split(",") if s.strip())

    @property
    def break_glass_codes(self) -> frozenset[str]:
        """The role codes allowed break-glass (empty: every clinician, i.e. non-admin)."""
        return frozenset(c.strip() for c in self.break_glass_roles.split(",") if c.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def export_folder(self) -> str:
        if self.export_dir:
            return self.export_dir
        if self.storage.startswith("sqlite:///"):
            return self.storage[len("sqlite:///"):] + "-exports"
        return "./alliance-fhir-exports"

    @property
    def zone(self) -> dt.timezone:
        sign = -1 if self.timezone.startswith("-") else 1
        hours, _, minutes = self.timezone.lstrip("+-").partition(":")
        return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes or 0)))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``FHIR_*`` variables, then explicit overrides (None is skipped)."""
        environ = dict(os.environ) if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            name = "FHIR_" + field.name.upper()
            raw = environ.get(name)
            if raw is not None:
                kind = type(getattr(cls(), field.name))
                try:
                    values[field.name] = _convert(raw, kind)
                except ValueError:
                    raise SettingsError(f"{name} must be {KINDS.get(kind, kind.__name__)}, "
                                        f"not {raw!r}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


AUTH_MODES = ("none", "smart")
TIERS = ("own-patients", "organization", "alliance")


class SettingsError(ValueError):
    """A ``FHIR_*`` variable whose value does not fit its setting."""


KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _convert(raw: str, kind: type) -> Any:
    if kind is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    return kind(raw)
