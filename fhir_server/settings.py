"""Runtime configuration: the only reader of environment variables (LIENTHONG_*).

CLI flags override the environment through `Settings.with_`; components receive a `Settings` (or call
`get_settings()` when they run outside an app, e.g. an adapter used as a library).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace

from fhir_server.i18n import lang_from_locale


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _env_choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = (os.environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


@dataclass(frozen=True)
class Settings:
    """All knobs of one Lienthong process; see the README's configuration table."""

    database_url: str = "sqlite:///./lienthong.db"
    host: str = "127.0.0.1"
    port: int = 8080
    base_path: str = "/fhir"
    public_base_url: str | None = None
    max_body_bytes: int = 20 * 1024 * 1024
    default_count: int = 50
    max_count: int = 1000
    profile_set: str = "hl7vn"
    pool_size: int = 4
    auth_mode: str = "off"
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: str = "HS256,RS256,ES256"
    jwt_audience: str | None = None
    # strict: a write referencing a resource that does not exist is refused; lenient: stored with a warning
    referential_integrity: str = "strict"
    # Ingest side (adapters and the pipeline)
    link_on_ingest: bool = True
    validate_ingest: bool = False
    vendor_path: str | None = None
    # ICD-10 code list (CSV, optionally .gz) the adapters check diagnosis codes against; None = shipped/none
    icd10_path: str | None = None
    check_ingest: bool = True
    # Language of CLI output: LIENTHONG_LANG, else the POSIX locale (LC_ALL, LC_MESSAGES, LANG).
    lang: str = "en"
    # Broker (NATS JetStream) between ingest front ends and `lienthong worker` processes; None: in-process
    broker_url: str | None = None
    broker_stream: str = "LIENTHONG_INGEST"
    broker_max_deliver: int = 5
    broker_ack_wait: float = 30.0
    # Central hub: keep an outbox of committed changes for the hub to pull (`GET [base]/$outbox`)
    outbox: bool = False
    extra: dict = field(default_factory=dict)
    # issue 14: the department's facility list (merged over the shipped one at start) and the smallest
    # count published by reports (smaller cells are suppressed)
    facilities_csv: str | None = None
    report_min_cell: int = 5
    report_facts: bool = True  # keep the visit facts current on every write (off only for bulk loads)

    @classmethod
    def from_env(cls) -> Settings:
        """Read settings from LIENTHONG_* environment variables."""
        return cls(
            database_url=os.environ.get("LIENTHONG_DATABASE_URL", cls.database_url),
            host=os.environ.get("LIENTHONG_HOST", cls.host),
            port=_env_int("LIENTHONG_PORT", cls.port),
            base_path=os.environ.get("LIENTHONG_BASE_PATH", cls.base_path),
            public_base_url=os.environ.get("LIENTHONG_PUBLIC_BASE_URL") or None,
            max_body_bytes=_env_int("LIENTHONG_MAX_BODY_BYTES", cls.max_body_bytes),
            default_count=_env_int("LIENTHONG_DEFAULT_COUNT", cls.default_count),
            max_count=_env_int("LIENTHONG_MAX_COUNT", cls.max_count),
            profile_set=os.environ.get("LIENTHONG_PROFILE_SET", cls.profile_set),
            pool_size=_env_int("LIENTHONG_POOL_SIZE", cls.pool_size),
            auth_mode=os.environ.get("LIENTHONG_AUTH", cls.auth_mode),
            jwt_secret=os.environ.get("LIENTHONG_JWT_SECRET") or None,
            jwt_public_key=os.environ.get("LIENTHONG_JWT_PUBLIC_KEY") or None,
            jwt_algorithms=os.environ.get("LIENTHONG_JWT_ALGORITHMS", cls.jwt_algorithms),
            jwt_audience=os.environ.get("LIENTHONG_JWT_AUDIENCE") or None,
            referential_integrity=_env_choice(
                "LIENTHONG_REFERENTIAL_INTEGRITY", cls.referential_integrity, ("strict", "lenient")
            ),
            link_on_ingest=_env_bool("LIENTHONG_LINK_ON_INGEST", cls.link_on_ingest),
            validate_ingest=_env_bool("LIENTHONG_VALIDATE_INGEST", cls.validate_ingest),
            vendor_path=os.environ.get("LIENTHONG_VENDOR_PATH") or None,
            icd10_path=os.environ.get("LIENTHONG_ICD10_PATH") or None,
            check_ingest=_env_bool("LIENTHONG_CHECK_INGEST", cls.check_ingest),
            lang=lang_from_locale(os.environ),
            broker_url=os.environ.get("LIENTHONG_BROKER_URL") or None,
            broker_stream=os.environ.get("LIENTHONG_BROKER_STREAM", cls.broker_stream),
            broker_max_deliver=_env_int("LIENTHONG_BROKER_MAX_DELIVER", cls.broker_max_deliver),
            broker_ack_wait=float(os.environ.get("LIENTHONG_BROKER_ACK_WAIT") or cls.broker_ack_wait),
            outbox=_env_bool("LIENTHONG_OUTBOX", cls.outbox),
            # issue 14
            facilities_csv=os.environ.get("LIENTHONG_FACILITIES_CSV") or None,
            report_min_cell=_env_int("LIENTHONG_REPORT_MIN_CELL", cls.report_min_cell),
            report_facts=_env_bool("LIENTHONG_REPORT_FACTS", cls.report_facts),
        )

    def with_(self, **changes) -> Settings:
        """Return a copy with some fields replaced (CLI flags win over the environment); None is ignored."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def get_settings() -> Settings:
    """The settings of this process as the environment says now (not cached: tests and tools change it)."""
    return Settings.from_env()
