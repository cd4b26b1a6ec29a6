"""Offline proof bundles: one audit entry, its inclusion proof and a (co)signed checkpoint.

A bundle (JSON, ``"format": "bxnode-audit-proof/v1"``) lets anyone holding the federation's
members file check, with no access to the node, that the node logged the entry::

    {"format": "bxnode-audit-proof/v1", "log": "KAZ-BS", "seq": 12, "time_ms": ...,
     "salt": b64 | null, "body": b64 | null, "leaf": b64, "tree_size": 40,
     "inclusion": [b64, ...], "checkpoint": "<signed note text, with cosignature lines>"}

Checks, in order: the checkpoint note is signed by the log's key (``bxnode/<node>``,
C2SP signed-note); the leaf names this seq and time; the body (if not erased) matches the
leaf's salted commitment; the leaf is at index seq-1 of the checkpoint's tree (RFC 9162
2.1.3.2); cosignatures from federation witnesses (``cosignature/v1``) are counted against
the quorum.  Sans-I/O.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from node.audit.checkpoint import Checkpoint, CosignatureV1Verifier
from node.audit.log import (
    MerkleAuditLog,
    body_commitment,
    decode_leaf,
    log_verifiers,
)
from node.audit.merkle import ProofError, hash_leaf, verify_inclusion
from node.audit.note import NoteVerifier, verify_note
from node.audit.origins import epoch_of
from node.core.errors import BxError, InvalidInput, NotAuthorised
from node.core.members import MemberDirectory

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_BUNDLE_BYTES",
    "BundleError",
    "BundleReport",
    "make_bundle",
    "verify_bundle",
    "witness_name",
    "witness_verifiers",
]

BUNDLE_FORMAT: Final = "bxnode-audit-proof/v1"
MAX_BUNDLE_BYTES: Final = 1024 * 1024


class BundleError(InvalidInput):
    default_reason = "bad_proof_bundle"


class BundleOriginUnlisted(BundleError):
    """The bundle's checkpoint is of a later log origin than the federation lists for the
    node (:mod:`node.audit.origins`): a reset governance has not recorded.  Earlier origins
    stay verifiable (entries from before a recorded reset)."""

    status = "FAILED_PRECONDITION"
    default_reason = "log_origin_unlisted"


def witness_name(node_id: str) -> str:
    """The cosigner key name of ``node_id`` when it witnesses others' logs."""
    return f"bxnode-witness/{node_id}"


def witness_verifiers(directory: MemberDirectory, *,
                      exclude: str | None = None) -> list[CosignatureV1Verifier]:
    out = []
    for m in directory.members():
        if m.node_id != exclude and "node" in m.roles:
            out += [CosignatureV1Verifier(name=witness_name(m.node_id), public_key=k.public_key)
                    for k in m.keys if not k.revoked]
    return out


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode("ascii")


def _unb64(v: Any, what: str) -> bytes:
    if not isinstance(v, str):
        raise BundleError(f"bundle: {what} missing")
    try:
        return base64.b64decode(v, validate=True)
    except ValueError:
        raise BundleError(f"bundle: {what} is not base64") from None


def make_bundle(log: MerkleAuditLog, seq: int, *, node_id: str) -> bytes:
    """The bundle for entry ``seq`` against the latest cosigned checkpoint that covers it,
    so it carries the witnesses' cosignatures; an entry newer than every cosigned
    checkpoint gets the smallest signed checkpoint covering it (no cosignatures yet)."""
    entry = log.entry(seq)
    if entry is None:
        raise NotAuthorised(f"no audit entry {seq}", reason="no_such_entry")
    head = log.latest_cosigned_head(seq) or log.head_at_least(seq)
    if head is None:
        raise NotAuthorised(f"entry {seq} is not yet in a signed checkpoint",
                            reason="not_yet_sealed")
    note = head.note.decode("utf-8") + "".join(head.cosignatures)
    return json.dumps({
        "format": BUNDLE_FORMAT, "log": node_id, "seq": seq, "time_ms": entry.time_ms,
        "salt": _b64(entry.salt), "body": _b64(entry.body), "leaf": _b64(entry.leaf),
        "tree_size": head.size,
        "inclusion": [_b64(h) for h in log.inclusion_proof(seq, head.size)],
        "checkpoint": note}, indent=1, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class BundleReport:
    log: str
    seq: int
    tree_size: int
    entry: dict[str, Any] | None  # None when the body was erased
    witnesses: tuple[str, ...]
    quorum: int

    @property
    def witnessed(self) -> bool:
        return len(self.witnesses) >= self.quorum


def verify_bundle(data: bytes, *, directory: MemberDirectory, quorum: int = 0,
                  expect_log: str | None = None) -> BundleReport:
    """Verify a bundle against the members file; raise :class:`BundleError` on any failure."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError("bundle larger than 1 MiB")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be a bundle
        raise BundleError("bundle is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a {BUNDLE_FORMAT} bundle")
    node_id, seq, size = doc.get("log"), doc.get("seq"), doc.get("tree_size")
    if not isinstance(node_id, str) or not isinstance(seq, int) or not isinstance(size, int):
        raise BundleError("bundle: log, seq or tree_size missing")
    if expect_log is not None and node_id != expect_log:
        raise BundleError(f"bundle is for {node_id}, not {expect_log}")
    try:
        member = directory.member(node_id)
    except BxError:
        raise BundleError(f"{node_id} is not a federation member") from None
    log_keys: Sequence[NoteVerifier] = log_verifiers(node_id, [k.public_key for k in member.keys])
    cosigners = witness_verifiers(directory, exclude=node_id)
    note_text = doc.get("checkpoint")
    if not isinstance(note_text, str):
        raise BundleError("bundle: checkpoint missing")
    try:
        note = verify_note(note_text.encode("utf-8"), verifiers=[*log_keys, *cosigners])
    except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape
        raise BundleError("bundle: checkpoint is not text") from None
    except BxError as exc:
        raise BundleError(f"checkpoint does not verify: {exc.message}") from None
    if not any(note.signed_by(v) for v in log_keys):
        raise BundleError(f"checkpoint is not signed by {node_id}")
    try:
        checkpoint = Checkpoint.parse(note.text)
    except BxError as exc:  # signed by the log, but not a checkpoint
        raise BundleError(f"bundle: {exc.message}") from None
    epoch = epoch_of(checkpoint.origin, node_id)
    if epoch is None or checkpoint.size != size:
        raise BundleError("checkpoint is for another log or size")
    if epoch > member.log_epoch:
        raise BundleOriginUnlisted(
            f"checkpoint origin {checkpoint.origin!r} is not listed for {node_id} by the "
            f"federation (it lists epoch {member.log_epoch}): a log reset not recorded")
    leaf = _unb64(doc.get("leaf"), "leaf")
    try:
        data_ = decode_leaf(leaf)
    except ValueError as exc:
        raise BundleError(f"bundle: {exc}") from None
    if data_.seq != seq or data_.time_ms != doc.get("time_ms"):
        raise BundleError("leaf does not name this entry")
    entry: dict[str, Any] | None = None
    if doc.get("body") is not None:
        body = _unb64(doc.get("body"), "body")
        salt = _unb64(doc.get("salt"), "salt")
        if body_commitment(salt, body) != data_.commitment:
            raise BundleError("entry body does not match its leaf")
        try:
            entry = json.loads(body)
        except (ValueError, RecursionError):
            raise BundleError("entry body is not JSON") from None
        if not isinstance(entry, dict) or entry.get("seq") != seq:
            raise BundleError("entry body names another entry")
    hashes = doc.get("inclusion") or []
    if not isinstance(hashes, list):
        raise BundleError("bundle: inclusion must be a list of hashes")
    proof = [_unb64(h, "inclusion proof") for h in hashes]
    try:
        verify_inclusion(leaf_hash=hash_leaf(leaf), index=seq - 1, size=size, proof=proof,
                         root=checkpoint.root_hash)
    except ProofError as exc:
        raise BundleError(f"inclusion proof does not verify: {exc.message}") from None
    names = sorted({s.name for s in note.verified
                    if any(s.name == c.name and s.key_id == c.key_id for c in cosigners)})
    return BundleReport(node_id, seq, size, entry, tuple(names), quorum)
