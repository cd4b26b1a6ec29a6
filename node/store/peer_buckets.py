"""Per-peer token buckets every replica of a node shares, in its PostgreSQL database.

Replicas on several machines cannot map one table of buckets as the workers of one machine
do (node/server/shared_limits.py), so on PostgreSQL each peer's tokens are also kept in
``peer_buckets``, one row per bucket (a BLAKE2b digest of its name: a member id, or
``unlisted:`` and a certificate fingerprint), and taken by one statement that refills,
checks and grants atomically (:data:`TAKE`).  A peer whose connections reach two replicas
is then admitted its agreed burst and rate once, not once per replica.  A statement may
grant a replica a *lease* of several tokens that exist now (node/server/db_limits.py), so a
peer well within its agreement costs one statement per lease, not one per call.  The row holds no
personal data and need not survive a crash of the database (a lost row is a full bucket
again, as after a restart of a single node), so the statements run on a connection of
their own with ``synchronous_commit = off``.  The table is created on SQLCipher too (the
schema list is one), where nothing uses it.
"""

from __future__ import annotations

import hashlib
from typing import Final

from node.store.schema import register

__all__ = ["REFUND", "TAKE", "bucket_key"]

register("limits", 1, """
CREATE TABLE IF NOT EXISTS peer_buckets (
    bucket TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    stamp DOUBLE PRECISION NOT NULL,
    granted DOUBLE PRECISION NOT NULL DEFAULT 0
);
""")

# The bucket refilled to now (capped at the burst; a stamp never moves back, so a replica
# whose clock is behind refills nothing).
_REFILL = "LEAST(%(burst)s, b.tokens + GREATEST(0, %(now)s - b.stamp) * %(rate)s)"
# What one statement grants: up to ``lease`` tokens that exist now, or else one promised
# ahead (the bucket below zero by the tokens promised).
_GRANT = f"CASE WHEN {_REFILL} >= 1 THEN LEAST(%(lease)s, FLOOR({_REFILL})) ELSE 1 END"

#: Refill ``bucket``, grant (see above) if the bucket stays at or above ``floor``
#: (``-rate * max_wait``: how far ahead tokens may be promised), and return (granted,
#: tokens left); no row when refused.  PostgreSQL's dialect, ``%(name)s`` parameters.
TAKE: Final = f"""
INSERT INTO peer_buckets AS b (bucket, tokens, stamp, granted)
VALUES (%(bucket)s, %(burst)s - LEAST(%(lease)s, %(burst)s), %(now)s,
        LEAST(%(lease)s, %(burst)s))
ON CONFLICT (bucket) DO UPDATE SET
    tokens = {_REFILL} - {_GRANT},
    granted = {_GRANT},
    stamp = GREATEST(b.stamp, %(now)s)
WHERE {_REFILL} - 1 >= %(floor)s
RETURNING granted, tokens
"""  # noqa: S608 - constant fragments, parameters only

#: Give back a token :data:`TAKE` granted for a request that never started.
REFUND: Final = """
UPDATE peer_buckets SET tokens = LEAST(%(burst)s, tokens + 1) WHERE bucket = %(bucket)s
"""


def bucket_key(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
