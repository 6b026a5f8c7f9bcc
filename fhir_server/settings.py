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
    # issue 13: SMART Backend Services (LIENTHONG_AUTH=smart): access-token lifetime in seconds, and the
    # server's signing key (PEM private key, RSA -> RS384, EC -> ES384); None = generated, stored in the DB
    token_lifetime: int = 300
    signing_key: str | None = None
    # issue 14: Bulk Data $export — where files go, when they are split and expire, worker liveness
    export_dir: str = "./lienthong-exports"
    export_file_max_bytes: int = 100 * 1024 * 1024
    export_expire_seconds: int = 24 * 3600
    export_retry_after: int = 2
    export_stale_seconds: int = 60
    extra: dict = field(default_factory=dict)
    # issue 12: bounds on the work one request may ask for (a 4xx OperationOutcome beyond them)
    max_json_depth: int = 100  # nesting levels of a JSON body (the models recurse; hard ceiling 200)
    max_sort_keys: int = 8  # keys in one _sort
    max_search_joins: int = 8  # chained (a.b=) and _has parameters in one search
    max_chain_depth: int = 3  # links in one chain / nested _has
    max_bundle_entries: int = 10_000  # entries in one batch or transaction Bundle
    # issue 13: audit trail, secure-by-default serving, clinician login for /ui
    # AuditEvent per patient-data access: on | off | auto (auto: on exactly when LIENTHONG_AUTH is not off)
    audit: str = "auto"
    audit_queue_size: int = 10_000
    audit_batch_size: int = 500
    # when the audit queue is full: block (wait up to audit_block_timeout, then 503) | fail (503 at once)
    audit_overflow: str = "block"
    audit_block_timeout: float = 5.0
    # serve a non-loopback address without auth (development only; refused otherwise)
    insecure_dev: bool = False
    # signing key of /ui session cookies (None: a random key per process, sessions end on restart)
    session_secret: str | None = None
    session_max_age: int = 8 * 3600
    # per-client token bucket: requests per second (0: off), burst, subjects never limited (comma-separated)
    rate_limit: float = 0.0
    rate_limit_burst: int = 20
    rate_limit_exempt: str = ""

    @property
    def audit_enabled(self) -> bool:
        """Whether accesses are audited (LIENTHONG_AUDIT, by default on when auth is on)."""
        if self.audit == "auto":
            return self.auth_mode != "off"
        return self.audit == "on"

    # issue 14: the department's facility list (merged over the shipped one at start) and the smallest
    # count published by reports (smaller cells are suppressed)
    facilities_csv: str | None = None
    report_min_cell: int = 5
    report_facts: bool = True  # keep the visit facts current on every write (off only for bulk loads)
    # issue 13: SMART App Launch (authorization code + PKCE): code lifetime, offline refresh-token lifetime
    # (online_access refresh tokens live session_max_age), all in seconds
    authcode_lifetime: int = 60
    refresh_token_lifetime: int = 30 * 24 * 3600
    # issue 13: external OpenID Connect provider for the /ui login (None: local passwords only); the
    # claim of its id_token that names the local account (which gives the role)
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid profile"
    oidc_user_claim: str = "preferred_username"
    # issue 14: re-exam appointments — a visit from `days_before` before to `days_after` after the appointment
    # day keeps it; scope "facility" (where it was given) or "any"; changing them needs `lienthong report rebuild`
    reexam_days_before: int = 3
    reexam_days_after: int = 7
    reexam_scope: str = "facility"
    # issue 17: clinician view cache (patients whose page model is kept in memory, per process; 0: off)
    ui_view_cache: int = 32
    # issue 20: answer GET read/vread/type search without FastAPI's routing (off: every request via FastAPI)
    direct_route: bool = True
    # issue 20: search statements compiled once per shape (off: every search built by SQLAlchemy)
    search_templates: bool = True
    # issue 13: password guessing on /ui/login and /auth/authorize — after `login_max_failures` wrong
    # passwords for one account or from one address, sign-in is refused for `login_lockout_seconds`,
    # doubling per further failure up to `login_lockout_max` (0 failures: no lockout)
    login_max_failures: int = 5
    login_lockout_seconds: int = 60
    login_lockout_max: int = 3600
    # issue 20: reads and searches on PostgreSQL without BEGIN/ROLLBACK (off: every read in a transaction)
    read_autocommit: bool = True
    # issue 20: audit writer — after the first queued access, wait up to this many milliseconds for more
    # before writing the batch (0: write at once; one transaction per read at low concurrency)
    audit_linger_ms: int = 50
    # issue 20: read by id on the event loop's thread (no thread-pool hop) on the direct route, when a
    # pooled connection is idle
    read_on_loop: bool = True

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
            # issue 12: request bounds
            max_json_depth=min(_env_int("LIENTHONG_MAX_JSON_DEPTH", cls.max_json_depth), 200),
            max_sort_keys=_env_int("LIENTHONG_MAX_SORT_KEYS", cls.max_sort_keys),
            max_search_joins=_env_int("LIENTHONG_MAX_SEARCH_JOINS", cls.max_search_joins),
            max_chain_depth=_env_int("LIENTHONG_MAX_CHAIN_DEPTH", cls.max_chain_depth),
            max_bundle_entries=_env_int("LIENTHONG_MAX_BUNDLE_ENTRIES", cls.max_bundle_entries),
            token_lifetime=_env_int("LIENTHONG_TOKEN_LIFETIME", cls.token_lifetime),
            signing_key=os.environ.get("LIENTHONG_SIGNING_KEY") or None,
            # issue 13
            audit=_env_choice("LIENTHONG_AUDIT", cls.audit, ("on", "off", "auto")),
            audit_queue_size=_env_int("LIENTHONG_AUDIT_QUEUE_SIZE", cls.audit_queue_size),
            audit_batch_size=_env_int("LIENTHONG_AUDIT_BATCH_SIZE", cls.audit_batch_size),
            audit_overflow=_env_choice("LIENTHONG_AUDIT_OVERFLOW", cls.audit_overflow, ("block", "fail")),
            audit_block_timeout=float(
                os.environ.get("LIENTHONG_AUDIT_BLOCK_TIMEOUT") or cls.audit_block_timeout
            ),
            insecure_dev=_env_bool("LIENTHONG_INSECURE_DEV", cls.insecure_dev),
            session_secret=os.environ.get("LIENTHONG_SESSION_SECRET") or None,
            session_max_age=_env_int("LIENTHONG_SESSION_MAX_AGE", cls.session_max_age),
            rate_limit=float(os.environ.get("LIENTHONG_RATE_LIMIT") or cls.rate_limit),
            rate_limit_burst=_env_int("LIENTHONG_RATE_LIMIT_BURST", cls.rate_limit_burst),
            rate_limit_exempt=os.environ.get("LIENTHONG_RATE_LIMIT_EXEMPT", cls.rate_limit_exempt),
            export_dir=os.environ.get("LIENTHONG_EXPORT_DIR") or cls.export_dir,
            export_file_max_bytes=_env_int("LIENTHONG_EXPORT_FILE_MAX_BYTES", cls.export_file_max_bytes),
            export_expire_seconds=_env_int("LIENTHONG_EXPORT_EXPIRE_SECONDS", cls.export_expire_seconds),
            export_retry_after=_env_int("LIENTHONG_EXPORT_RETRY_AFTER", cls.export_retry_after),
            export_stale_seconds=_env_int("LIENTHONG_EXPORT_STALE_SECONDS", cls.export_stale_seconds),
            # issue 14
            facilities_csv=os.environ.get("LIENTHONG_FACILITIES_CSV") or None,
            report_min_cell=_env_int("LIENTHONG_REPORT_MIN_CELL", cls.report_min_cell),
            report_facts=_env_bool("LIENTHONG_REPORT_FACTS", cls.report_facts),
            # issue 13: SMART App Launch
            authcode_lifetime=_env_int("LIENTHONG_AUTHCODE_LIFETIME", cls.authcode_lifetime),
            refresh_token_lifetime=_env_int("LIENTHONG_REFRESH_TOKEN_LIFETIME", cls.refresh_token_lifetime),
            oidc_issuer=(os.environ.get("LIENTHONG_OIDC_ISSUER") or "").rstrip("/") or None,
            oidc_client_id=os.environ.get("LIENTHONG_OIDC_CLIENT_ID") or None,
            oidc_client_secret=os.environ.get("LIENTHONG_OIDC_CLIENT_SECRET") or None,
            oidc_scopes=os.environ.get("LIENTHONG_OIDC_SCOPES") or cls.oidc_scopes,
            oidc_user_claim=os.environ.get("LIENTHONG_OIDC_USER_CLAIM") or cls.oidc_user_claim,
            # issue 14: re-exam appointments
            reexam_days_before=_env_int("LIENTHONG_REEXAM_DAYS_BEFORE", cls.reexam_days_before),
            reexam_days_after=_env_int("LIENTHONG_REEXAM_DAYS_AFTER", cls.reexam_days_after),
            reexam_scope=_env_choice("LIENTHONG_REEXAM_SCOPE", cls.reexam_scope, ("facility", "any")),
            # issue 17
            ui_view_cache=max(_env_int("LIENTHONG_UI_VIEW_CACHE", cls.ui_view_cache), 0),
            # issue 20
            direct_route=_env_bool("LIENTHONG_DIRECT_ROUTE", cls.direct_route),
            # issue 20: search statements per shape
            search_templates=_env_bool("LIENTHONG_SEARCH_TEMPLATES", cls.search_templates),
            # issue 13: sign-in lockout
            login_max_failures=max(_env_int("LIENTHONG_LOGIN_MAX_FAILURES", cls.login_max_failures), 0),
            login_lockout_seconds=max(
                _env_int("LIENTHONG_LOGIN_LOCKOUT_SECONDS", cls.login_lockout_seconds), 1
            ),
            login_lockout_max=max(_env_int("LIENTHONG_LOGIN_LOCKOUT_MAX", cls.login_lockout_max), 1),
            # issue 20: read autocommit
            read_autocommit=_env_bool("LIENTHONG_READ_AUTOCOMMIT", cls.read_autocommit),
            # issue 20: audit batch linger
            audit_linger_ms=max(_env_int("LIENTHONG_AUDIT_LINGER_MS", cls.audit_linger_ms), 0),
            # issue 20: read on the loop
            read_on_loop=_env_bool("LIENTHONG_READ_ON_LOOP", cls.read_on_loop),
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
