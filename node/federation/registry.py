"""The federation registry: a threshold-signed, versioned membership document.

Sans-I/O: everything here is a function over bytes, typed values and a time
passed in.  Reading files, fetching from peers, the audit log and the swap into
the running node live in :mod:`node.federation.registry_keeper`.

Document (README, "Federation registry")::

    {"signed": {"type": "bxnode-registry", "version": 7,
                "expires": "2027-06-30T00:00:00Z", "threshold": 3,
                "states":  [{"country": "KAZ", "governance_keys": ["<base64 Ed25519>"]}, ...],
                "members": [{"node_id": "KAZ-BS", "country": "KAZ", "agency": "...",
                             "contact": "...", "endpoint": "kaz-bs.example.gov:50051",
                             "roles": ["node"],  # endpoint: or a list of 1..8 addresses
                             "signing_keys": [{"public_key": "<base64>",
                                               "not_before": "...Z", "not_after": "...Z"}],
                             "tls_certs": [{"sha256": "<hex>",
                                            "not_before": "...Z", "not_after": "...Z"}],
                             "log_origin": "bxnode/KAZ-BS/log-2"}],  # optional
                "revoked": [{"node_id": "X-BS", "reason": "..."} |
                            {"key_id": "<16 hex>", "reason": "..."} |
                            {"tls_cert_sha256": "<hex>", "reason": "..."}]},
     "signatures": [{"keyid": "<16 hex>", "sig": "<base64 Ed25519 signature>"}]}

Signed bytes: ``PAE("application/vnd.bxnode.v1.registry+json", JCS(signed))`` where
JCS is RFC 8785 and PAE is DSSE's pre-authentication encoding (as for every
other signature in bxnode).  The document's digest is SHA-256(JCS(signed)).

Update rules (TUF specification 1.0, "5.3 Update the root role"), in
:func:`verify_update`: a new version must be signed by a threshold of the
trusted version's governance keys (5.3.4) and by a threshold of its own
(5.3.5); its version must be exactly one more (5.3.5, rollback and skipped
versions refused; a node walks the versions one by one); the final version must
not be expired (5.3.10, freeze attack).  Stricter than TUF: each *state* casts
at most one vote whichever of its keys signed (so one state holding several keys
cannot reach a threshold alone), a governance key may belong to one state only,
and a document with a signature from an unknown key, an invalid signature or the
same key twice is refused outright rather than having the signature ignored.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import rfc8785

from node.audit.origins import epoch_of
from node.core.envelope import key_id_for, pae
from node.core.errors import InvalidInput, PeerError
from node.core.members import parse_endpoint
from node.core.model import validate_id, validate_state
from node.core.signer import SigningKeyLike, as_signer

__all__ = [
    "MAX_REGISTRY_BYTES",
    "PAYLOAD_TYPE",
    "REGISTRY_TYPE",
    "ROLES",
    "GovernanceKey",
    "NodeEntry",
    "NodeKey",
    "Registry",
    "RegistryError",
    "Revocation",
    "Signature",
    "SignatureReport",
    "State",
    "TlsCert",
    "canonical",
    "check_log_origins",
    "format_time",
    "merge_signatures",
    "parse_registry",
    "parse_signed",
    "parse_time",
    "sign_registry",
    "signature_report",
    "signing_input",
    "verify_chain",
    "verify_self_signed",
    "verify_update",
]

REGISTRY_TYPE = "bxnode-registry"
PAYLOAD_TYPE = "application/vnd.bxnode.v1.registry+json"
ROLES = frozenset({"node", "auditor", "witness"})

#: Bounds, checked next to the parser (STYLE 8).
MAX_REGISTRY_BYTES = 1024 * 1024
MAX_STATES = 64
MAX_MEMBERS = 1000
MAX_KEYS = 16          # governance keys per state; signing keys / TLS certs per node
MAX_REVOKED = 10_000
MAX_SIGNATURES = 256
MAX_TEXT = 256
MAX_VERSION = 2**53 - 1  # the JSON (and RFC 8785) safe integer range

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_KEYID = re.compile(r"[0-9a-f]{16}")


class RegistryError(PeerError):
    """A registry document is refused; ``reason`` is a stable code (README table)."""

    status = "INVALID_ARGUMENT"
    default_reason = "malformed"


class _RegistrySignatureError(RegistryError):
    """A governance signature on a registry version does not verify: ``bad_signature``,
    UNAUTHENTICATED as every ``bad_signature`` is (one code, one status)."""

    status = "UNAUTHENTICATED"


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GovernanceKey:
    key_id: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class State:
    country: str
    keys: tuple[GovernanceKey, ...]


@dataclass(frozen=True, slots=True)
class NodeKey:
    key_id: str
    public_key: bytes
    not_before_ms: int
    not_after_ms: int


@dataclass(frozen=True, slots=True)
class TlsCert:
    sha256: str
    not_before_ms: int
    not_after_ms: int


@dataclass(frozen=True, slots=True)
class NodeEntry:
    node_id: str
    country: str
    agency: str
    contact: str
    endpoint: tuple[str, ...]  # the primary first; written as a string when there is one
    roles: tuple[str, ...]
    signing_keys: tuple[NodeKey, ...]
    tls_certs: tuple[TlsCert, ...]
    #: the audit log's origin governance recorded (None: the field is absent, epoch 1)
    log_origin: str | None = None

    @property
    def log_epoch(self) -> int:
        """The epoch of :attr:`log_origin` (:mod:`node.audit.origins`); 1 when absent."""
        if self.log_origin is None:
            return 1
        epoch = epoch_of(self.log_origin, self.node_id)
        assert epoch is not None  # checked when parsed
        return epoch


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: str  # "node_id", "key_id" or "tls_cert_sha256"
    ref: str
    reason: str


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Registry:
    """One parsed registry version.  ``signed`` is the JSON value the signatures cover."""

    version: int
    expires_ms: int
    threshold: int
    states: tuple[State, ...]
    members: tuple[NodeEntry, ...]
    revoked: tuple[Revocation, ...]
    signatures: tuple[Signature, ...]
    signed: Mapping[str, Any]
    canonical_signed: bytes
    digest: str

    def node(self, node_id: str) -> NodeEntry | None:
        return next((m for m in self.members if m.node_id == node_id), None)

    def is_revoked(self, kind: str, ref: str) -> bool:
        return any(r.kind == kind and r.ref == ref for r in self.revoked)

    def governance_keys(self) -> dict[str, tuple[str, bytes]]:
        """key id -> (country, public key)."""
        return {k.key_id: (s.country, k.public_key) for s in self.states for k in s.keys}

    def document(self) -> dict[str, Any]:
        return {"signed": dict(self.signed),
                "signatures": [{"keyid": s.key_id, "sig": base64.b64encode(s.sig).decode()}
                               for s in self.signatures]}

    def to_bytes(self) -> bytes:
        """The document as stored and served: indented JSON (only ``signed``'s JCS is signed)."""
        return (json.dumps(self.document(), indent=2, ensure_ascii=False) + "\n").encode()

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_ms


# --- canonical bytes -----------------------------------------------------------------------


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON of ``value``."""
    try:
        return bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError as exc:
        raise RegistryError(f"registry is not canonicalisable: {exc}",
                            reason="malformed") from exc


def signing_input(canonical_signed: bytes) -> bytes:
    """The bytes each governance key signs: DSSE PAE over the JCS bytes of ``signed``."""
    return pae(PAYLOAD_TYPE, canonical_signed)


# --- parsing -------------------------------------------------------------------------------


def parse_time(text: object, what: str) -> int:
    """``YYYY-MM-DDTHH:MM:SSZ`` (RFC 3339, UTC, no fractions) to milliseconds."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise RegistryError(f"{what} must be a time like 2027-01-31T00:00:00Z",
                            reason="malformed")
    try:
        when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise RegistryError(f"{what} is not a valid time", reason="malformed") from None
    return int(when.timestamp()) * 1000


def format_time(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bad(msg: str) -> RegistryError:
    return RegistryError(msg, reason="malformed")


def _obj(v: object, what: str, required: set[str], optional: Iterable[str] = ()
         ) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _bad(f"{what} must be an object")
    missing = required - v.keys()
    if missing:
        raise _bad(f"{what} lacks {', '.join(sorted(missing))}")
    extra = v.keys() - required - set(optional)
    if extra:
        raise _bad(f"{what} has unknown field(s) {', '.join(sorted(extra))}")
    return v


def _list(v: object, what: str, *, max_len: int, min_len: int = 0) -> list[Any]:
    if not isinstance(v, list):
        raise _bad(f"{what} must be a list")
    if not min_len <= len(v) <= max_len:
        raise _bad(f"{what} must hold {min_len}..{max_len} entries")
    return v


def _text(v: object, what: str, *, max_len: int = MAX_TEXT, empty: bool = True) -> str:
    if not isinstance(v, str) or len(v) > max_len or (not empty and not v):
        raise _bad(f"{what} must be a string of {0 if empty else 1}..{max_len} characters")
    return v


def _int(v: object, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _bad(f"{what} must be a whole number {lo}..{hi}")
    return v


def _ed25519(v: object, what: str) -> bytes:
    try:
        raw = base64.b64decode(_text(v, what, max_len=64), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise _bad(f"{what} is not base64") from None
    if len(raw) != 32:
        raise _bad(f"{what} must be a 32-byte Ed25519 public key")
    return raw


def _checked(v: Any, check: Any, what: str) -> str:
    try:
        return str(check(v, what))
    except PeerError as exc:
        raise _bad(str(exc)) from None


def _window(o: dict[str, Any], what: str) -> tuple[int, int]:
    nb = parse_time(o["not_before"], f"{what} not_before")
    na = parse_time(o["not_after"], f"{what} not_after")
    if nb >= na:
        raise _bad(f"{what}: not_before must be before not_after")
    return nb, na


def _unique(items: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for i in items:
        if i in seen:
            raise _bad(f"{what} {i} is listed twice")
        seen.add(i)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:  # two readers could disagree on which value is signed
            raise _bad(f"field {k!r} appears twice in one object")
        out[k] = v
    return out


def _no_floats(text: str) -> Any:
    raise _bad(f"numbers must be whole: {text}")


def _load_json(data: bytes) -> Any:
    if len(data) > MAX_REGISTRY_BYTES:
        raise RegistryError(f"registry document is larger than {MAX_REGISTRY_BYTES} bytes",
                            reason="oversized")
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_float=_no_floats,
                          parse_constant=_no_floats)
    except RegistryError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _bad(f"registry document is not JSON: {exc}") from None


def _node(v: object, countries: set[str]) -> NodeEntry:
    o = _obj(v, "member", {"node_id", "country", "agency", "contact", "endpoint", "roles",
                           "signing_keys", "tls_certs"}, {"log_origin"})
    node_id = _checked(o["node_id"], validate_id, "node id")
    country = _checked(o["country"], validate_state, f"{node_id} country")
    if country not in countries:
        raise _bad(f"{node_id}: country {country} is not a member state")
    roles = tuple(_text(r, f"{node_id} role") for r in _list(o["roles"], f"{node_id} roles",
                                                             max_len=3, min_len=1))
    if not set(roles) <= ROLES:
        raise _bad(f"{node_id}: roles must be among {', '.join(sorted(ROLES))}")
    _unique(roles, f"{node_id} role")
    keys = []
    for k in _list(o["signing_keys"], f"{node_id} signing_keys", max_len=MAX_KEYS, min_len=1):
        ko = _obj(k, f"{node_id} signing key", {"public_key", "not_before", "not_after"})
        pub = _ed25519(ko["public_key"], f"{node_id} signing key")
        nb, na = _window(ko, f"{node_id} signing key")
        keys.append(NodeKey(key_id_for(pub), pub, nb, na))
    certs = []
    for c in _list(o["tls_certs"], f"{node_id} tls_certs", max_len=MAX_KEYS, min_len=1):
        co = _obj(c, f"{node_id} TLS certificate", {"sha256", "not_before", "not_after"})
        fp = _text(co["sha256"], f"{node_id} TLS sha256", max_len=64)
        if not _HEX64.fullmatch(fp):
            raise _bad(f"{node_id}: TLS sha256 must be 64 lower-case hex characters")
        nb, na = _window(co, f"{node_id} TLS certificate")
        certs.append(TlsCert(fp, nb, na))
    origin: str | None = None
    if "log_origin" in o:
        origin = _text(o["log_origin"], f"{node_id} log_origin", empty=False)
        if epoch_of(origin, node_id) is None:
            raise _bad(f"{node_id}: log_origin must be bxnode/{node_id} or "
                       f"bxnode/{node_id}/log-<k> (k >= 2)")
    return NodeEntry(
        node_id=node_id, country=country, agency=_text(o["agency"], f"{node_id} agency"),
        contact=_text(o["contact"], f"{node_id} contact"),
        endpoint=_endpoint(o["endpoint"], node_id),
        roles=roles, signing_keys=tuple(keys), tls_certs=tuple(certs), log_origin=origin)


def _endpoint(v: object, node_id: str) -> tuple[str, ...]:
    """One address or a list of 1..8 distinct ones, the primary first (members.parse_endpoint)."""
    try:
        return parse_endpoint(v, f"{node_id} endpoint")
    except InvalidInput as exc:
        raise RegistryError(str(exc), reason="bad_endpoint") from None


def _revocation(v: object) -> Revocation:
    if not isinstance(v, dict):
        raise _bad("revocation must be an object")
    kinds = [k for k in ("node_id", "key_id", "tls_cert_sha256") if k in v]
    if len(kinds) != 1:
        raise _bad("a revocation names exactly one of node_id, key_id, tls_cert_sha256")
    kind = kinds[0]
    o = _obj(v, "revocation", {kind}, {"reason"})
    ref = _text(o[kind], f"revoked {kind}", max_len=64, empty=False)
    if kind == "node_id":
        _checked(ref, validate_id, "revoked node id")
    elif kind == "key_id" and not _KEYID.fullmatch(ref):
        raise _bad("revoked key_id must be 16 lower-case hex characters")
    elif kind == "tls_cert_sha256" and not _HEX64.fullmatch(ref):
        raise _bad("revoked tls_cert_sha256 must be 64 lower-case hex characters")
    return Revocation(kind, ref, _text(o.get("reason", ""), "revocation reason"))


def parse_signed(signed: object, signatures: tuple[Signature, ...] = ()) -> Registry:
    """Validate the ``signed`` part and build the typed registry (signatures are not checked)."""
    o = _obj(signed, "signed", {"type", "version", "expires", "threshold", "states", "members",
                                "revoked"})
    if o["type"] != REGISTRY_TYPE:
        raise RegistryError(f"signed.type must be {REGISTRY_TYPE!r}", reason="wrong_type")
    version = _int(o["version"], "version", 1, MAX_VERSION)
    expires = parse_time(o["expires"], "expires")
    states = []
    for s in _list(o["states"], "states", max_len=MAX_STATES, min_len=1):
        so = _obj(s, "state", {"country", "governance_keys"})
        country = _checked(so["country"], validate_state, "state country")
        keys = tuple(GovernanceKey(key_id_for(raw), raw) for raw in (
            _ed25519(k, f"{country} governance key")
            for k in _list(so["governance_keys"], f"{country} governance_keys",
                           max_len=MAX_KEYS, min_len=1)))
        states.append(State(country, keys))
    _unique((s.country for s in states), "state")
    _unique((k.key_id for s in states for k in s.keys), "governance key")  # one state per key
    threshold = _int(o["threshold"], "threshold", 1, len(states))
    countries = {s.country for s in states}
    members = tuple(_node(m, countries) for m in _list(o["members"], "members",
                                                       max_len=MAX_MEMBERS))
    _unique((m.node_id for m in members), "node")
    _unique((k.key_id for m in members for k in m.signing_keys), "signing key")
    _unique((c.sha256 for m in members for c in m.tls_certs), "TLS certificate")
    revoked = tuple(_revocation(r) for r in _list(o["revoked"], "revoked", max_len=MAX_REVOKED))
    _unique((f"{r.kind}:{r.ref}" for r in revoked), "revocation")
    body = canonical(o)
    return Registry(version=version, expires_ms=expires, threshold=threshold,
                    states=tuple(states), members=members, revoked=revoked,
                    signatures=signatures, signed=o, canonical_signed=body,
                    digest=hashlib.sha256(body).hexdigest())


def parse_registry(data: bytes) -> Registry:
    """Parse and bound-check a registry document.  Signatures are parsed, not yet verified."""
    doc = _obj(_load_json(data), "registry document", {"signed", "signatures"})
    sigs = []
    for s in _list(doc["signatures"], "signatures", max_len=MAX_SIGNATURES):
        so = _obj(s, "signature", {"keyid", "sig"})
        kid = _text(so["keyid"], "signature keyid", max_len=16)
        if not _KEYID.fullmatch(kid):
            raise _bad("signature keyid must be 16 lower-case hex characters")
        try:
            raw = base64.b64decode(_text(so["sig"], "signature", max_len=128), validate=True)
        except ValueError:  # binascii.Error, or a character outside ASCII
            raise _bad("signature is not base64") from None
        if len(raw) != 64:
            raise _bad("an Ed25519 signature is 64 bytes")
        sigs.append(Signature(kid, raw))
    return parse_signed(doc["signed"], tuple(sigs))


# --- signatures ---------------------------------------------------------------------------


def sign_registry(reg: Registry, key: SigningKeyLike) -> Registry:
    """Add (or replace) ``key``'s signature.  Signatures by other keys are kept: they merge."""
    signer = as_signer(key)
    kid = key_id_for(signer.public_key)
    sig = signer.sign(signing_input(reg.canonical_signed))
    others = tuple(s for s in reg.signatures if s.key_id != kid)
    return _with_signatures(reg, (*others, Signature(kid, bytes(sig))))


def merge_signatures(reg: Registry, other: Registry) -> Registry:
    """Signatures of two copies of the same version, merged (each key once)."""
    if other.digest != reg.digest:
        raise RegistryError("the two documents sign different contents", reason="mismatch")
    by_kid = {s.key_id: s for s in (*reg.signatures, *other.signatures)}
    return _with_signatures(reg, tuple(by_kid.values()))


def _with_signatures(reg: Registry, sigs: tuple[Signature, ...]) -> Registry:
    return Registry(version=reg.version, expires_ms=reg.expires_ms, threshold=reg.threshold,
                    states=reg.states, members=reg.members, revoked=reg.revoked,
                    signatures=tuple(sorted(sigs, key=lambda s: s.key_id)), signed=reg.signed,
                    canonical_signed=reg.canonical_signed, digest=reg.digest)


@dataclass(frozen=True, slots=True)
class SignatureReport:
    """Which governance keys validly signed, and what was wrong with the other signatures."""

    valid_keys: frozenset[str]
    unknown: tuple[str, ...]
    invalid: tuple[str, ...]
    duplicates: tuple[str, ...]

    def states(self, trust: Registry) -> frozenset[str]:
        """The states of ``trust`` with at least one of *their* keys among the valid ones."""
        return frozenset(s.country for s in trust.states
                         if any(k.key_id in self.valid_keys for k in s.keys))

    def votes(self, trust: Registry) -> int:
        """Votes toward ``trust``'s threshold: one per state of ``trust``, whichever key."""
        return len(self.states(trust))


def signature_report(reg: Registry, *trusts: Registry) -> SignatureReport:
    """Check every signature on ``reg`` against the governance keys of ``trusts``."""
    keys: dict[str, bytes] = {}
    for t in trusts:
        keys.update((kid, pub) for kid, (_, pub) in t.governance_keys().items())
    message = signing_input(reg.canonical_signed)
    valid: set[str] = set()
    unknown, invalid, dups = [], [], []
    seen: set[str] = set()
    for s in reg.signatures:
        if s.key_id in seen:
            dups.append(s.key_id)
            continue
        seen.add(s.key_id)
        public = keys.get(s.key_id)
        if public is None:
            unknown.append(s.key_id)
            continue
        try:
            nacl.signing.VerifyKey(public).verify(message, s.sig)
        except nacl.exceptions.BadSignatureError:
            invalid.append(s.key_id)
            continue
        valid.add(s.key_id)
    return SignatureReport(valid_keys=frozenset(valid), unknown=tuple(unknown),
                           invalid=tuple(invalid), duplicates=tuple(dups))


def _check_signatures(reg: Registry, trusted: Registry) -> None:
    if not reg.signatures:
        raise RegistryError(f"registry version {reg.version} is unsigned", reason="unsigned")
    rep = signature_report(reg, trusted, reg)
    if rep.duplicates:
        raise RegistryError(f"key {rep.duplicates[0]} signed twice: each key counts once",
                            reason="duplicate_signature")
    if rep.unknown:
        raise RegistryError(f"signature by key {rep.unknown[0]}, which is not a governance key",
                            reason="unknown_signer")
    if rep.invalid:
        raise _RegistrySignatureError(f"signature by key {rep.invalid[0]} does not verify",
                                      reason="bad_signature")
    # TUF 5.3.4: a threshold of the trusted version's keys (one vote per state).
    if rep.votes(trusted) < trusted.threshold:
        raise RegistryError(
            f"version {reg.version} is signed by {rep.votes(trusted)} of the "
            f"{trusted.threshold} trusted governance states needed", reason="under_signed")
    # TUF 5.3.5: and a threshold of its own keys (matters when the keys change).
    if rep.votes(reg) < reg.threshold:
        raise RegistryError(
            f"version {reg.version} is signed by {rep.votes(reg)} of the {reg.threshold} "
            "states its own governance keys need", reason="under_signed_new_keys")


def verify_self_signed(reg: Registry) -> None:
    """A trust anchor's own check: a threshold of its own governance keys signed it."""
    _check_signatures(reg, reg)


def check_log_origins(trusted: Registry, new: Registry) -> None:
    """bxnode: a node's log origin only moves forward (a reset starts the next epoch; going
    back would reopen an origin its witnesses closed)."""
    for entry in new.members:
        old = trusted.node(entry.node_id)
        if old is not None and entry.log_epoch < old.log_epoch:
            raise RegistryError(
                f"version {new.version} moves {entry.node_id}'s log origin back to "
                f"{entry.log_origin or 'bxnode/' + entry.node_id} from {old.log_origin}",
                reason="log_origin_rollback")


def verify_update(trusted: Registry, new: Registry, *, now_ms: int | None) -> None:
    """Raise unless ``new`` may replace ``trusted`` (TUF 5.3.4, 5.3.5, 5.3.10).

    ``now_ms=None`` skips the expiry check: for intermediate versions of a chain,
    which TUF allows to be expired (only the final version must be fresh).
    """
    # TUF 5.3.5: version N+1 exactly; rollback (and replay of the same version) refused.
    if new.version <= trusted.version:
        raise RegistryError(f"version {new.version} is not newer than the trusted version "
                            f"{trusted.version}", reason="rollback")
    if new.version != trusted.version + 1:
        raise RegistryError(f"version {new.version} skips versions after {trusted.version}",
                            reason="version_gap")
    _check_signatures(new, trusted)
    check_log_origins(trusted, new)
    # TUF 5.3.10: freeze attack.
    if now_ms is not None and new.expired(now_ms):
        raise RegistryError(f"version {new.version} expired at {format_time(new.expires_ms)}",
                            reason="expired")


def verify_chain(trusted: Registry, chain: Sequence[Registry], *, now_ms: int) -> Registry:
    """Walk ``chain`` (versions N+1, N+2, ...) from ``trusted``; the final one must be fresh."""
    if not chain:
        raise RegistryError("no registry version offered", reason="empty")
    current = trusted
    for i, reg in enumerate(chain):
        verify_update(current, reg, now_ms=now_ms if i == len(chain) - 1 else None)
        current = reg
    return current
