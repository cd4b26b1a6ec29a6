"""Per-peer token buckets every replica of a node shares, in its PostgreSQL database.

Replicas on several machines cannot map one table of buckets as the workers of one machine
do (node/server/shared_limits.py), so on PostgreSQL each peer's tokens are also kept in
``peer_buckets``, one row per bucket (a BLAKE2b digest of its name: a member id, or
``unlisted:`` and a certificate fingerprint), and taken by one statement that refills,
checks and takes atomically (:data:`TAKE`).  A peer whose connections reach two replicas
is then admitted its agreed burst and rate once, not once per replica.  The row holds no
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
    stamp DOUBLE PRECISION NOT NULL
);
""")

#: Refill ``bucket`` to ``now`` (capped at ``burst``; a stamp never moves back, so a replica
#: whose clock is behind refills nothing), take one token if the bucket stays at or above
#: ``floor`` (``-rate * max_wait``: the tokens that may be promised ahead), and return what
#: is left; no row when refused.  PostgreSQL's dialect, ``%(name)s`` parameters.
TAKE: Final = """
INSERT INTO peer_buckets AS b (bucket, tokens, stamp)
VALUES (%(bucket)s, %(burst)s - 1, %(now)s)
ON CONFLICT (bucket) DO UPDATE SET
    tokens = LEAST(%(burst)s, b.tokens + GREATEST(0, %(now)s - b.stamp) * %(rate)s) - 1,
    stamp = GREATEST(b.stamp, %(now)s)
WHERE LEAST(%(burst)s, b.tokens + GREATEST(0, %(now)s - b.stamp) * %(rate)s) - 1 >= %(floor)s
RETURNING tokens
"""

#: Give back a token :data:`TAKE` took for a request that never started.
REFUND: Final = """
UPDATE peer_buckets SET tokens = LEAST(%(burst)s, tokens + 1) WHERE bucket = %(bucket)s
"""


def bucket_key(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
