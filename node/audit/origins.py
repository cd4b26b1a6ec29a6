"""Checkpoint origins of a node's audit log, one per epoch.  Values only, no I/O.

A node's log starts with the origin ``bxnode/<node id>`` (epoch 1).  ``bxnode audit
reset-log`` declares that the log under its current origin ended (a restored node that
lost a tail its witnesses hold cannot go on under that origin without forking it) and
starts the next epoch: ``bxnode/<node id>/log-<k>``, k >= 2.  The tree itself goes on (the
entries the node still holds stay in it); only the origin line of the checkpoints it signs
changes, so a witness starts the new origin from size 0 and keeps what it holds of the
old one.  The note key name stays ``bxnode/<node id>`` in every epoch (tlog-checkpoint:
the origin line SHOULD be the key name; here one key signs every epoch of one node, and a
peer's or auditor's verifier for the node does not change with a reset).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_EPOCH", "epoch_of", "log_origin", "split_epoch"]

#: A bound on the epoch number (a reset is a rare, declared event).
MAX_EPOCH: Final = 999_999

_EPOCH = re.compile(r"(?P<base>.+)/log-(?P<k>[2-9]|[1-9][0-9]{1,5})")


def log_origin(node_id: str, epoch: int = 1) -> str:
    """The checkpoint origin line of ``node_id``'s audit log in ``epoch`` (see module)."""
    if not 1 <= epoch <= MAX_EPOCH:
        raise ValueError(f"log epoch {epoch} out of range")
    return f"bxnode/{node_id}" if epoch == 1 else f"bxnode/{node_id}/log-{epoch}"


def split_epoch(origin: str) -> tuple[str, int]:
    """``(base origin, epoch)``: ``a/log-3`` is epoch 3 of ``a``; anything else epoch 1."""
    m = _EPOCH.fullmatch(origin)
    return (origin, 1) if m is None else (m.group("base"), int(m.group("k")))


def epoch_of(origin: str, node_id: str) -> int | None:
    """The epoch of ``node_id``'s log that ``origin`` names, or None if it names another."""
    base, epoch = split_epoch(origin)
    return epoch if base == log_origin(node_id) else None
