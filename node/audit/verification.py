"""What an auditor checks beyond the tree itself: the stored cosignatures, and the log
against the checkpoints its witnesses hold.  Sans-I/O: the caller reads the store (on the
database thread) and asks the witnesses; these functions take values and return reports.

* :func:`check_cosignatures` -- every stored cosignature (``audit_cosignatures``) verifies,
  as C2SP tlog-cosignature ``cosignature/v1``, over the body of the checkpoint it is
  stored with, under a key the federation directory (members file or signed registry)
  lists for that witness.  A cosignature that does not verify, of an unknown witness, or
  of a checkpoint that is no longer stored, is tampering.
* :func:`open_witnessed` -- a witness's answer to ``WitnessService.GetWitnessedCheckpoint``:
  our own signed checkpoint (C2SP signed-note, the log's key) and the witness's fresh
  cosignature of it (its key from the directory).
* :func:`compare_with_witnesses` -- a log rolled back to an earlier, internally
  consistent state (entries, checkpoints and hashes above N deleted together) verifies on
  its own; only a witness that cosigned a larger size can tell.  The log must hold at
  least every size a witness holds, with the same root there (RFC 9162 2.1: the root of
  the first ``size`` leaves, recomputed from the stored leaves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from node.audit.bundle import witness_name
from node.audit.checkpoint import (
    Checkpoint,
    Cosignature,
    CosignatureV1Verifier,
    open_checkpoint,
)
from node.audit.log import SignedHead, VerifyReport
from node.audit.note import NoteVerifier, parse_note, parse_signature_lines
from node.core.errors import BxError, Unauthenticated
from node.core.members import Member, MemberDirectory

__all__ = [
    "WITNESS_PREFIX",
    "CosignatureCheck",
    "RestoreJudgement",
    "WitnessComparison",
    "WitnessedHead",
    "check_cosignatures",
    "compare_with_witnesses",
    "judge_restored",
    "open_witnessed",
    "witness_keys",
]

WITNESS_PREFIX = witness_name("")


def witness_keys(member: Member) -> tuple[list[CosignatureV1Verifier], list[CosignatureV1Verifier]]:
    """``(valid, revoked)`` cosigning keys of ``member`` as a witness."""
    name = witness_name(member.node_id)
    valid = [CosignatureV1Verifier(name=name, public_key=k.public_key)
             for k in member.keys if not k.revoked]
    revoked = [CosignatureV1Verifier(name=name, public_key=k.public_key)
               for k in member.keys if k.revoked]
    return valid, revoked


def _verifies(line: str, body: bytes, keys: Iterable[CosignatureV1Verifier]) -> bool:
    try:
        sigs = parse_signature_lines(line.encode("utf-8"))
    except (BxError, UnicodeEncodeError):
        return False
    keys = list(keys)
    return len(sigs) == 1 and any(
        sigs[0].name == k.name and sigs[0].key_id == k.key_id
        and k.verify(body, sigs[0].signature) for k in keys)


@dataclass(frozen=True, slots=True)
class CosignatureCheck:
    #: checkpoint size -> node ids of the witnesses whose cosignature of it verifies
    valid: dict[int, tuple[str, ...]] = field(default_factory=dict)
    #: tampering: each names the checkpoint size and the witness
    problems: tuple[str, ...] = ()
    #: not counted, not tampering (a key revoked since it cosigned)
    notes: tuple[str, ...] = ()

    def count(self, size: int) -> int:
        return len(self.valid.get(size, ()))

    def last_cosigned(self, quorum: int) -> int:
        """The largest checkpoint size with at least ``quorum`` (>= 1) valid cosignatures."""
        return max((s for s, w in self.valid.items() if len(w) >= max(1, quorum)), default=0)


def check_cosignatures(heads: Sequence[SignedHead], rows: Sequence[tuple[int, str, str]], *,
                       directory: MemberDirectory, log_id: str) -> CosignatureCheck:
    """Check every stored cosignature row ``(size, witness name, line)`` (see module doc)."""
    by_size = {h.size: h for h in heads}
    valid: dict[int, list[str]] = {}
    problems: list[str] = []
    notes: list[str] = []
    members = {m.node_id: m for m in directory.members()}
    for size, name, line in rows:
        head = by_size.get(size)
        if head is None:
            problems.append(f"cosignature of {name} on checkpoint {size}, which is not stored")
            continue
        node = name[len(WITNESS_PREFIX):] if name.startswith(WITNESS_PREFIX) else ""
        member = members.get(node)
        if member is None or node == log_id or "node" not in member.roles:
            problems.append(f"cosignature on checkpoint {size} is by {name}, not a federation "
                            "witness")
            continue
        try:
            body = Checkpoint.parse(parse_note(head.note).text).body_bytes()
        except BxError:
            problems.append(f"checkpoint {size} does not parse")
            continue
        good, revoked = witness_keys(member)
        if _verifies(line, body, good):
            valid.setdefault(size, []).append(node)
        elif _verifies(line, body, revoked):
            notes.append(f"cosignature of {name} on checkpoint {size} is by a revoked key")
        else:
            problems.append(f"cosignature of {name} on checkpoint {size} does not verify")
    return CosignatureCheck({s: tuple(sorted(w)) for s, w in valid.items()}, tuple(problems),
                            tuple(notes))


@dataclass(frozen=True, slots=True)
class WitnessedHead:
    """What a witness holds of our log: the size and root of our checkpoint it last
    cosigned (0 and None: it never cosigned one), with its fresh cosignature."""

    witness: str
    size: int
    root: bytes | None
    cosignature: Cosignature | None = None


def open_witnessed(witness: Member, *, checkpoint: bytes, cosignatures: bytes,
                   log_verifiers: Sequence[NoteVerifier], origin: str) -> WitnessedHead:
    """Verify a GetWitnessedCheckpoint answer; raises :class:`BxError` if it does not."""
    if not checkpoint:
        return WitnessedHead(witness.node_id, 0, None)
    signed = open_checkpoint(checkpoint, log_verifiers=log_verifiers, origin=origin)
    body = signed.checkpoint.body_bytes()
    good, _ = witness_keys(witness)
    for sig in parse_signature_lines(cosignatures):
        for key in good:
            if sig.name == key.name and sig.key_id == key.key_id \
                    and key.verify(body, sig.signature):
                return WitnessedHead(witness.node_id, signed.checkpoint.size,
                                     signed.checkpoint.root_hash,
                                     Cosignature.from_note_signature(sig))
    raise Unauthenticated(f"{witness.node_id} answered without a valid cosignature",
                          reason="bad_cosignature")


@dataclass(frozen=True, slots=True)
class WitnessComparison:
    witness: str
    size: int
    ok: bool
    problem: str = ""


def compare_with_witnesses(report: VerifyReport,
                           heads: Sequence[WitnessedHead]) -> list[WitnessComparison]:
    """Each witnessed size against the recomputed log (``report`` must carry the roots at
    those sizes: ``MerkleAuditLog.verify(roots_at=...)``)."""
    out = []
    for h in heads:
        if h.size == 0 or h.root is None:
            out.append(WitnessComparison(h.witness, 0, True))
        elif h.size > report.entries:
            out.append(WitnessComparison(
                h.witness, h.size, False,
                f"{h.witness} witnessed size {h.size}, but the log holds only "
                f"{report.entries} entries: entries {report.entries + 1}..{h.size} are gone "
                "(rolled back)"))
        elif report.roots.get(h.size) != h.root:
            out.append(WitnessComparison(
                h.witness, h.size, False,
                f"the log's first {h.size} entries are not the ones {h.witness} witnessed at "
                f"size {h.size} (another root: rewritten or forked)"))
        else:
            out.append(WitnessComparison(h.witness, h.size, True))
    return out


@dataclass(frozen=True, slots=True)
class RestoreJudgement:
    """Whether a restored log may sign again (:mod:`node.audit.hold`)."""

    ok: bool
    detail: str
    #: witness -> the size of our log it holds (those that answered)
    witnessed: dict[str, int]


def judge_restored(report: VerifyReport, heads: Sequence[WitnessedHead], *,
                   witnesses: Sequence[str], failed: Mapping[str, str]) -> RestoreJudgement:
    """A restored log may sign again only if it verifies, *every* configured witness
    answered (one that did not may hold a larger size: fail closed), and the log holds
    each size a witness holds, with the same root there (:func:`compare_with_witnesses`):
    then the next checkpoint extends every one they cosigned (RFC 9162 2.1.4)."""
    witnessed = {h.witness: h.size for h in heads}
    if not report.ok:
        return RestoreJudgement(False, f"the log does not verify: {report.problem}", witnessed)
    if not witnesses:
        return RestoreJudgement(False, "no witness is configured, so nothing tells how far "
                                       "the log had grown", witnessed)
    missing = [w for w in witnesses if w not in witnessed]
    if missing:
        why = "; ".join(f"{w}: {failed.get(w, 'not asked')}" for w in missing)
        return RestoreJudgement(False, f"witness(es) {', '.join(missing)} could not be asked "
                                       f"what they hold ({why})", witnessed)
    bad = [c for c in compare_with_witnesses(report, heads) if not c.ok]
    if bad:
        return RestoreJudgement(False, bad[0].problem, witnessed)
    return RestoreJudgement(True, f"every witness holds at most size {report.entries} of "
                                  "this log, with the same root", witnessed)
