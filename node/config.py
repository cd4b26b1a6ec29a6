"""Node configuration: one TOML file (``node.toml``) in the node directory.

Relative paths are resolved against the folder holding the config file.
Secrets are never in the config: it names key files (mode 0600), and the
database key may come from ``$BXNODE_DB_KEY`` instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog

from node.config_schema import check_schema
from node.config_section import Section
from node.core import limits
from node.core.errors import ConfigError
from node.core.model import validate_id, validate_state
from node.federation.pki import is_dev_material
from node.keys import SigningKeyRef, parse_keys
from node.observability.settings import MetricsSettings
from node.retention.settings import RetentionSettings
from node.server.fair import DEFAULT_SLOTS, MAX_SLOTS
from node.server.limits import DEFAULT_RATE_WAIT_MS, DEFAULT_STREAMS, MAX_RATE_WAIT_MS, MAX_STREAMS
from node.web.settings import ConsoleSettings

__all__ = ["CONFIG_NAME", "AuditSettings", "LocalApiSettings", "NodeConfig", "StorageSettings",
           "load_config", "render_config"]

CONFIG_NAME = "node.toml"
log = structlog.get_logger("bxnode.config")


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``[audit]``: group commit, retention and cross-node witnessing (README, auditor)."""

    batch_max: int = 256          # commit a batch at this many entries ...
    batch_ms: int = 2             # ... or when its first entry is this old
    retention_days: int = 1095    # bodies older than this may be erased (3 years)
    witness_interval_s: int = 60  # how often to send our checkpoint to the witnesses
    witness_quorum: int = 1       # cosignatures a checkpoint needs to count as witnessed
    witnesses: tuple[str, ...] | None = None  # peers that witness us (default: all nodes)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> AuditSettings:
        num = Section("audit", doc, Path()).num

        witnesses = doc.get("witnesses")
        if witnesses is not None and (not isinstance(witnesses, list) or not all(
                isinstance(w, str) for w in witnesses)):
            raise Section("audit", doc, Path()).error("witnesses must be a list of node ids")
        return cls(
            batch_max=num("batch_max", 256, 1, 100_000),
            batch_ms=num("batch_ms", 2, 0, 10_000),
            retention_days=num("retention_days", 1095, 1, 36500),
            witness_interval_s=num("witness_interval_s", 60, 1, 86400),
            witness_quorum=num("witness_quorum", 1, 0, 100),
            witnesses=None if witnesses is None else tuple(witnesses))


_STORAGE_KEYS = frozenset({"backend", "path", "key_file", "dsn", "password_file",
                           "field_key_file", "pool_min", "pool_max", "connect_timeout_s",
                           "busy_timeout_s"})
_PG_ONLY = ("dsn", "password_file", "field_key_file", "pool_min", "pool_max", "connect_timeout_s")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """``[storage]`` beyond the SQLCipher file: which backend, and PostgreSQL's settings.

    ``backend = "sqlcipher"`` (the default: ``path`` and ``key_file``) or ``"postgresql"``:
    ``dsn`` (libpq ``key=value`` or a URI, never with a password: the password comes only
    from ``$BXNODE_PG_PASSWORD`` or ``password_file``, mode 0600), ``field_key_file`` (the
    key of the blind indexes and sealed fields, 0600; or ``$BXNODE_FIELD_KEY``), and the
    connection pool's ``pool_min`` / ``pool_max`` and ``connect_timeout_s``.

    ``busy_timeout_s`` (1..300, default 5): how long a statement waits for a lock another
    process holds -- on SQLCipher SQLite's lock on the file or the writers' flock on
    ``<db>.lock`` another bxnode writer holds, on PostgreSQL any lock another replica or
    session holds (``lock_timeout``; ``bxnode store migrate`` waits however long) --
    before the request fails UNAVAILABLE (``database_locked``); below a peer's usual 10 s
    deadline on purpose.
    """

    backend: str = "sqlcipher"
    dsn: str | None = None
    password_file: Path | None = None
    field_key_file: Path | None = None
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout_s: int = 5
    busy_timeout_s: int = 5

    @classmethod
    def parse(cls, root: Path, doc: dict[str, Any]) -> StorageSettings:
        sec = Section("storage", doc, root, _STORAGE_KEYS)
        num, path = sec.num, sec.path
        backend = doc.get("backend", "sqlcipher")
        if backend not in ("sqlcipher", "postgresql"):
            raise sec.error('backend must be "sqlcipher" or "postgresql"')
        if backend == "sqlcipher":
            extra = [k for k in _PG_ONLY if k in doc]
            if extra:
                raise sec.error(f'{extra[0]} applies only to backend = "postgresql"')
            return cls(busy_timeout_s=num("busy_timeout_s", 5, 1, 300))

        dsn = doc.get("dsn")
        if not isinstance(dsn, str) or not dsn.strip():
            raise sec.error('dsn is required for backend = "postgresql"')
        from node.store.postgresql import dsn_has_password

        if dsn_has_password(dsn):  # never echo the DSN: it holds the password
            raise sec.error("dsn must not contain a password; set $BXNODE_PG_PASSWORD or "
                            "[storage] password_file (mode 0600)", reason="dsn_has_password")
        pool_min = num("pool_min", 1, 1, 100)
        pool_max = num("pool_max", max(10, pool_min), 1, 1000)
        if pool_min > pool_max:
            raise sec.error("pool_min must not exceed pool_max")
        return cls(backend="postgresql", dsn=dsn, password_file=path("password_file"),
                   field_key_file=path("field_key_file"), pool_min=pool_min,
                   pool_max=pool_max, connect_timeout_s=num("connect_timeout_s", 5, 1, 120),
                   busy_timeout_s=num("busy_timeout_s", 5, 1, 300))


_LOCAL_KEYS = frozenset({"listen", "api_socket", "api_tcp", "tls_cert", "tls_key", "server_ca",
                         "client_ca", "oidc_issuer", "oidc_audience", "oidc_jwks",
                         "oidc_algorithms", "token_leeway_s", "roles", "roles_file",
                         "fanout_deadline_ms"})


@dataclass(frozen=True, slots=True)
class LocalApiSettings:
    """``[local]``: the LocalService listener for national systems and officers (README,
    "For the national system integrator").  ``listen`` (LocalCrossingService) is read by
    :mod:`node.crossings.settings`.

    ``api_socket`` is ``unix:PATH`` (relative to the node folder; default
    ``unix:officers.sock``) or ``"off"``; ``api_tcp`` an optional ``host:port`` for client
    systems on the agency network (needs ``client_ca``: always mTLS).  ``tls_cert`` /
    ``tls_key`` are the listener's own certificate (default: the node's), ``server_ca``
    what clients verify it with (default: ``[tls] ca``).  ``client_ca`` is the agency CA
    issuing officer and workstation certificates: when set, every connection must present
    one.  ``oidc_issuer`` + ``oidc_audience`` + ``oidc_jwks`` enable bearer tokens.  Roles:
    the ``[local.roles]`` table or ``roles_file`` (JSON ``{"roles": {id: [role, ...]}}``).
    """

    api_socket: str | None = None
    api_tcp: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    server_ca: Path | None = None
    client_ca: Path | None = None
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks: Path | None = None
    oidc_algorithms: tuple[str, ...] = ()
    token_leeway_s: int = 30
    roles: tuple[tuple[str, tuple[str, ...]], ...] = ()
    roles_file: Path | None = None
    fanout_deadline_ms: int = 10_000

    @property
    def enabled(self) -> bool:
        """Served only when some way to authenticate a caller is configured."""
        return (self.api_socket is not None or self.api_tcp is not None) and (
            self.client_ca is not None or self.oidc_jwks is not None)

    @classmethod
    def parse(cls, root: Path, doc: Any) -> LocalApiSettings:
        sec = Section("local", doc, root, _LOCAL_KEYS)
        text, path, num = sec.text, sec.path, sec.num

        sock = text("api_socket") or "unix:officers.sock"
        if sock == "off":
            api_socket = None
        elif sock.startswith("unix:"):
            resolved = (root / sock[len("unix:"):]).resolve()
            if len(str(resolved)) > 100:
                raise sec.error(f"api_socket path {resolved} is longer than 100 "
                                "characters; choose a shorter path")
            api_socket = f"unix:{resolved}"
        else:
            raise ConfigError('config: [local] api_socket must be "unix:PATH" or "off"',
                              reason="bad_config")
        tcp = text("api_tcp") or None
        if tcp is not None and (":" not in tcp or not tcp.rsplit(":", 1)[1].isdigit()):
            raise sec.error("api_tcp must be host:port")
        client_ca = path("client_ca")
        if tcp is not None and client_ca is None:
            raise sec.error("api_tcp needs client_ca: the TCP listener always requires "
                            "client certificates (mTLS)")
        jwks = path("oidc_jwks")
        issuer, audience = text("oidc_issuer"), text("oidc_audience")
        if (jwks is not None) != bool(issuer) or (jwks is not None) != bool(audience):
            raise sec.error("oidc_issuer, oidc_audience and oidc_jwks go together")
        algs = doc.get("oidc_algorithms", [])
        if not isinstance(algs, list) or not all(isinstance(a, str) for a in algs):
            raise sec.error("oidc_algorithms must be a list of names")
        roles = doc.get("roles", {})
        if not isinstance(roles, dict) or not all(
                isinstance(v, list) and all(isinstance(r, str) for r in v)
                for v in roles.values()):
            raise ConfigError("config: [local.roles] maps an identity to a list of roles",
                              reason="bad_config")
        roles_file = path("roles_file")
        if roles and roles_file is not None:
            raise sec.error("give either [local.roles] or roles_file")
        return cls(api_socket=api_socket, api_tcp=tcp, tls_cert=path("tls_cert"),
                   tls_key=path("tls_key"), server_ca=path("server_ca"), client_ca=client_ca,
                   oidc_issuer=issuer, oidc_audience=audience, oidc_jwks=jwks,
                   oidc_algorithms=tuple(algs),
                   token_leeway_s=num("token_leeway_s", 30, 0, 300),
                   roles=tuple((k, tuple(v)) for k, v in sorted(roles.items())),
                   roles_file=roles_file,
                   fanout_deadline_ms=num("fanout_deadline_ms", 10_000, 100, 60_000))


@dataclass(frozen=True, slots=True)
class NodeConfig:
    root: Path
    node_id: str
    country: str
    agency: str
    contact: str
    dev_mode: bool
    listen: str
    max_batch: int
    clock_skew_s: int
    #: [keys]: a key file's path, or a key in a PKCS#11 token (node/keys/).
    signing_key: SigningKeyRef
    tls_cert: Path
    tls_key: Path
    tls_ca: Path
    db_path: Path
    db_key_file: Path | None
    members: Path
    policy_dir: Path
    opa_url: str | None
    policy_cache: bool
    operator: str
    audit: AuditSettings = field(default_factory=lambda: AuditSettings())
    #: [federation] registry: the trusted registry file; when set it replaces ``members``.
    registry: Path | None = None
    registry_refresh_s: int = 60       # fetch newer registry versions from peers this often
    registry_expiry_grace_s: int = 3600  # then, with the registry expired, refuse peers
    #: [storage] backend and PostgreSQL settings (the SQLCipher file is db_path, db_key_file).
    storage: StorageSettings = field(default_factory=lambda: StorageSettings())
    #: [retention] days each kind of record holding personal data is kept (issue 13).
    retention: RetentionSettings = field(default_factory=lambda: RetentionSettings())
    #: [local] the LocalService listener: transports, officer credentials, roles.
    local_api: LocalApiSettings = field(default_factory=lambda: LocalApiSettings())
    #: [local] listen as written (the local crossings listener; parsed by node.crossings).
    local_listen: str | None = None
    #: [followup] deadline_hours (checked by node.crossings.settings).
    followup_deadline_hours: float = 12.0
    #: [metrics] the Prometheus endpoint's local address; None (the default): no endpoint.
    metrics: MetricsSettings | None = None
    #: [console] the operator console's listener (node/web/settings.py; off by default).
    console: ConsoleSettings = field(default_factory=lambda: ConsoleSettings())
    #: [server] processing_slots: admitted requests in processing at once, the free slots
    #: handed to the peer holding fewest (node/server/fair.py).
    processing_slots: int = DEFAULT_SLOTS
    #: [server] max_concurrent_streams: calls one connection has open in the node at once
    #: (node/server/limits.py DEFAULT_STREAMS).
    max_concurrent_streams: int = DEFAULT_STREAMS
    #: [server] rate_wait_ms: how long a request over its peer's rate waits for its token
    #: (node/server/limits.py); 0 refuses it at once.
    rate_wait_ms: int = DEFAULT_RATE_WAIT_MS

    def secret_paths(self) -> list[Path]:
        key = self.signing_key
        keys = [key] if isinstance(key, Path) else [key.pin_file] if key.pin_file else []
        return [*keys, self.tls_key, self.tls_cert, self.tls_ca]


#: The sections load_config reads; each must be a TOML table when present.
_SECTIONS = ("node", "server", "limits", "keys", "tls", "storage", "federation", "policy",
             "client", "audit", "local", "metrics", "console")


def _whole(value: Any, what: str) -> int:
    """``int(value)`` as before, but a value int() cannot take is a ConfigError (fuzzing)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"config: {what} must be a whole number", reason="bad_config") from None


def _server_count(doc: dict[str, Any], key: str, default: int, hi: int, lo: int = 1) -> int:
    """``[server] key``, a whole number lo..hi (a bool or a string is an error, not a count)."""
    value = _get(doc, "server", key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"config: [server] {key} must be {lo}..{hi}", reason="bad_config")
    return value


def _nul_key(value: Any, where: str = "") -> str | None:
    """The first key whose text holds a NUL (no path, id or URL may: os calls refuse them)."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, list) else ()
    for k, v in items:
        found = _nul_key(v, f"{where}.{k}" if where else str(k))
        if found is not None:
            return found
    return None


def _get(doc: dict[str, Any], section: str, key: str, default: Any = None) -> Any:
    value = doc.get(section, {}).get(key, default)
    if value is None:
        raise ConfigError(f"config: [{section}] {key} is required", reason="bad_config")
    return value


def load_config(path: Path) -> NodeConfig:
    if path.is_dir():
        path = path / CONFIG_NAME
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no config at {path} (run 'bxnode init' first)",
                          reason="missing_config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}", reason="bad_config") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {exc.start})",
                          reason="bad_config") from None
    nul = _nul_key(doc)
    if nul is not None:
        raise ConfigError(f"config: {nul} holds a NUL character", reason="bad_config")
    check_schema(doc)  # unknown sections and keys, wrong types: one line naming the key
    for section in _SECTIONS:  # `audit = 1` where [audit] belongs: refused, not a crash
        if not isinstance(doc.get(section, {}), dict):
            raise ConfigError(f"config: [{section}] must be a table", reason="bad_config")
    root = path.parent.resolve()

    def p(section: str, key: str, default: Any = None) -> Path:
        return (root / str(_get(doc, section, key, default))).resolve()

    key_file = doc.get("storage", {}).get("key_file")
    if key_file is not None and not isinstance(key_file, str):
        raise ConfigError("config: [storage] key_file must be a file name", reason="bad_config")
    max_batch = _whole(_get(doc, "limits", "max_batch", 500), "[limits] max_batch")
    if not 1 <= max_batch <= limits.MAX_BATCH_ITEMS_HARD:
        raise ConfigError(f"config: max_batch must be 1..{limits.MAX_BATCH_ITEMS_HARD}",
                          reason="bad_config")
    skew = _whole(_get(doc, "limits", "clock_skew_s", 120), "[limits] clock_skew_s")
    slots = _server_count(doc, "processing_slots", DEFAULT_SLOTS, MAX_SLOTS)
    streams = _server_count(doc, "max_concurrent_streams", DEFAULT_STREAMS, MAX_STREAMS)
    rate_wait = _server_count(doc, "rate_wait_ms", DEFAULT_RATE_WAIT_MS, MAX_RATE_WAIT_MS, 0)
    if not 1 <= skew <= 3600:
        raise ConfigError("config: clock_skew_s must be 1..3600", reason="bad_config")
    try:
        node_id = validate_id(str(_get(doc, "node", "id")), "node id")
        country = validate_state(str(_get(doc, "node", "country")), "country")
    except Exception as exc:
        raise ConfigError(f"config: {exc}", reason="bad_config") from exc
    cfg = NodeConfig(
        root=root,
        node_id=node_id,
        country=country,
        agency=str(_get(doc, "node", "agency", "")),
        contact=str(_get(doc, "node", "contact", "")),
        dev_mode=bool(_get(doc, "node", "dev_mode", False)),
        listen=str(_get(doc, "server", "listen", "0.0.0.0:50051")),
        max_batch=max_batch,
        clock_skew_s=skew,
        signing_key=parse_keys(root, doc.get("keys", {})),
        tls_cert=p("tls", "cert", "tls.crt"),
        tls_key=p("tls", "key", "tls.key"),
        tls_ca=p("tls", "ca", "ca.crt"),
        db_path=p("storage", "path", "node.db"),
        db_key_file=(root / key_file).resolve() if key_file else None,
        members=p("federation", "members", "members.json"),
        policy_dir=p("policy", "dir", "policies"),
        opa_url=doc.get("policy", {}).get("opa_url") or None,
        policy_cache=bool(doc.get("policy", {}).get("cache", True)),
        operator=str(doc.get("client", {}).get("operator", "")),
        audit=_audit_settings(doc),
        retention=_retention_settings(doc),
        storage=StorageSettings.parse(root, doc.get("storage", {})),
        local_api=LocalApiSettings.parse(root, doc.get("local", {})),
        local_listen=doc.get("local", {}).get("listen"),
        followup_deadline_hours=float(doc.get("followup", {}).get("deadline_hours", 12.0)),
        metrics=MetricsSettings.parse(root, doc.get("metrics"), peer_listen=str(
            _get(doc, "server", "listen", "0.0.0.0:50051"))),
        console=ConsoleSettings.parse(root, doc.get("console", {}), peer_listen=str(
            _get(doc, "server", "listen", "0.0.0.0:50051"))),
        **_registry_settings(root, doc.get("federation", {})),
        processing_slots=slots,
        max_concurrent_streams=streams,
        rate_wait_ms=rate_wait,
    )
    check_dev_keys(cfg)
    return cfg


def _retention_settings(doc: dict[str, Any]) -> RetentionSettings:
    """``[retention]`` (node/retention/settings.py); ``audit_bodies_days`` defaults to
    ``[audit] retention_days``."""
    section = doc.get("retention", {})
    if not isinstance(section, dict):
        raise ConfigError("config: [retention] must be a table", reason="bad_config")
    audit_days = doc.get("audit", {}).get("retention_days")
    return RetentionSettings.parse(
        section, audit_retention_days=audit_days if isinstance(audit_days, int) else None)


def _audit_settings(doc: dict[str, Any]) -> AuditSettings:
    """``[audit]``, with ``retention_days`` taken from ``[retention] audit_bodies_days`` when
    that is set: one retention for audit bodies, whichever tool erases them."""
    audit = AuditSettings.parse(doc.get("audit", {}))
    section = doc.get("retention", {})
    if isinstance(section, dict) and "audit_bodies_days" in section:
        audit = replace(audit, retention_days=_retention_settings(doc).audit_bodies_days)
    return audit


def _registry_settings(root: Path, fed: dict[str, Any]) -> dict[str, Any]:
    """``[federation] registry / refresh_s / expiry_grace_s`` (README, "Federation registry")."""
    out: dict[str, Any] = {}
    if fed.get("registry"):
        out["registry"] = (root / str(fed["registry"])).resolve()
    sec = Section("federation", fed, root)
    for key, name, lo, hi in (("refresh_s", "registry_refresh_s", 1, 86_400),
                              ("expiry_grace_s", "registry_expiry_grace_s", 0, 30 * 86_400)):
        if key in fed:
            out[name] = sec.num(key, 0, lo, hi)
    return out


def check_dev_keys(cfg: NodeConfig) -> None:
    """Refuse development keys unless the node runs in explicit development mode."""
    dev = [p for p in cfg.secret_paths() if is_dev_material(p)]
    if not dev:
        return
    if not cfg.dev_mode:
        raise ConfigError(
            f"development keys ({dev[0].name}) are refused outside development mode; "
            "set [node] dev_mode = true only on a test machine",
            reason="dev_keys_refused",
        )
    log.warning("dev_mode_with_development_keys", node=cfg.node_id,
                note="development keys in use: never in production")


def _registry_lines(registry: str | None, q: Any) -> str:
    if registry is None:
        return ""
    return (f"\nregistry = {q(registry)}   # the signed federation registry (replaces members)"
            "\nrefresh_s = 60             # fetch newer registry versions from peers this often"
            "\nexpiry_grace_s = 3600      # an expired registry: refuse peers after this long")


def render_config(*, node_id: str, country: str, agency: str, contact: str, listen: str,
                  dev_mode: bool, members: str, policy_dir: str, operator: str,
                  signing_key: str = "signing.key", tls_cert: str = "tls.crt",
                  tls_key: str = "tls.key", tls_ca: str = "ca.crt",
                  registry: str | None = None) -> str:
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"""# bxnode node configuration. Paths are relative to this file.
[node]
id = {q(node_id)}
country = {q(country)}
agency = {q(agency)}
contact = {q(contact)}          # contact point returned with hits
dev_mode = {str(dev_mode).lower()}          # true only on test machines: allows keys/dev

[server]
listen = {q(listen)}
# processing_slots = 16    # admitted requests verified, decided and committed at once; a
                           # free slot goes to the peer holding fewest (fair under a flood)
# max_concurrent_streams = 32  # calls one connection has open in the node at once; a
                           # flooding connection waits on its own side (HTTP/2)
# rate_wait_ms = 1000      # a request over its peer's rate waits this long for its turn
                           # (paced, not refused); 0 refuses it at once

[limits]
max_batch = 500            # items per batch request; more is rejected, never truncated
clock_skew_s = 120         # accepted difference between a request's time and ours

[keys]
signing_key = {q(signing_key)}   # Ed25519 seed, hex, mode 0600

[tls]
cert = {q(tls_cert)}
key = {q(tls_key)}            # mode 0600
ca = {q(tls_ca)}              # roots that peers' certificates chain to

[storage]
path = "node.db"           # SQLCipher database
key_file = "db.key"        # 0600; or set $BXNODE_DB_KEY and remove this line

[federation]
members = {q(members)}{_registry_lines(registry, q)}

[policy]
dir = {q(policy_dir)}
# opa_url = "http://127.0.0.1:8181"   # evaluate on an OPA server instead of in-process
cache = true               # cache decisions per (peer, purpose, kind, size, day); set false if
                           # your policy reads the operator, case reference text or time of day

[client]
operator = {q(operator)}      # default operator id for 'bxnode query'

[audit]
batch_max = 256            # group commit: commit a batch at this many entries ...
batch_ms = 2               # ... or when its oldest entry is this many ms old (a lookup's
                           # latency grows by up to this much; 0 commits at every chance)
retention_days = 1095      # 'bxnode audit erase-expired' erases bodies older than this
witness_interval_s = 60    # send our signed checkpoint to the witnesses this often
witness_quorum = 1         # cosignatures a checkpoint needs to count as witnessed
# witnesses = ["KGZ-BS"]   # default: every other member with the role "node"
"""
