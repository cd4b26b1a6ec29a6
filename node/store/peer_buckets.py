"""Per-peer token buckets every replica of a node shares, in its PostgreSQL database.

Replicas on several machines cannot map one table of buckets as the workers of one machine
do (node/server/shared_limits.py), so on PostgreSQL each peer's tokens are also kept in
``peer_buckets``, one row per bucket (a BLAKE2b digest of its name: a member id, or
``unlisted:`` and a certificate fingerprint), and taken by one statement that refills,
checks and grants atomically (:data:`TAKE`).  A peer whose connections reach two replicas
is then admitted its agreed burst and rate once, not once per replica.  A statement may
grant a replica a *lease* of several tokens that exist now (node/server/db_limits.py), so a
peer well within its agreement costs one statement per lease, not one per call.

A peer's calls in flight (``max_in_flight``) are the node's too (limits v2): ``peer_slots``
holds one row per (bucket, replica), the slots that replica leases and when the lease
expires.  :data:`GRANT_SLOTS` grows a replica's lease under the bucket's advisory lock
(:func:`slots_lock_key`, taken by the statement before it in the same transaction) by at
most what the other replicas' live leases leave, so the leases of all replicas never add up
to more than ``max_in_flight``; a replica renews its leases while its calls hold them
(:data:`RENEW_SLOTS`) and gives back what it no longer needs (:data:`SHRINK_SLOTS`,
:data:`FORGET_SLOTS`); a lease not renewed (its replica killed) expires and counts no more.

The rows hold no personal data and need not survive a crash of the database (a lost row is
a full bucket, or free slots, again, as after a restart of a single node), so the
statements run on a connection of their own with ``synchronous_commit = off``.  The tables
are in the schema list every backend has, SQLCipher's too, where nothing uses them.
"""

from __future__ import annotations

import hashlib
from typing import Final

from node.store.schema import register

__all__ = ["FORGET_SLOTS", "GRANT_SLOTS", "LOCK_SLOTS", "REFUND", "RENEW_SLOTS",
           "SHRINK_SLOTS", "TAKE", "bucket_key", "slots_lock_key"]

register("limits", 1, """
CREATE TABLE IF NOT EXISTS peer_buckets (
    bucket TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    stamp DOUBLE PRECISION NOT NULL,
    granted DOUBLE PRECISION NOT NULL DEFAULT 0
);
""")

#: Limits v2: a peer's calls in flight, leased to the replicas (node/server/db_limits.py).
register("limits", 2, """
CREATE TABLE IF NOT EXISTS peer_slots (
    bucket TEXT NOT NULL,
    replica TEXT NOT NULL,
    slots INTEGER NOT NULL,
    expires DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (bucket, replica)
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


#: Grant ``replica`` a lease of up to ``want`` of ``bucket``'s ``max`` slots: as many as the
#: other replicas' live leases (expiring after ``now``) leave, at least none; the other
#: replicas' dead leases deleted.  Run under :func:`slots_lock_key`'s advisory lock, taken
#: by an earlier statement of the same transaction (so this statement's snapshot sees every
#: grant committed before it).  Returns (slots,).
GRANT_SLOTS: Final = """
WITH others AS (
    SELECT COALESCE(SUM(slots), 0) AS n FROM peer_slots
    WHERE bucket = %(bucket)s AND replica <> %(replica)s AND expires > %(now)s
), dead AS (
    DELETE FROM peer_slots
    WHERE bucket = %(bucket)s AND replica <> %(replica)s AND expires <= %(now)s
)
INSERT INTO peer_slots AS s (bucket, replica, slots, expires)
SELECT %(bucket)s, %(replica)s, GREATEST(0, LEAST(%(want)s, %(max)s - others.n)), %(expires)s
FROM others
ON CONFLICT (bucket, replica) DO UPDATE SET slots = excluded.slots, expires = excluded.expires
RETURNING slots
"""

#: Move the expiry of ``replica``'s live leases of ``buckets`` to ``expires``; returns the
#: buckets renewed (a lease already expired is not: another replica may count its slots
#: free, so it is granted again, under the lock, before its slots are used again).
RENEW_SLOTS: Final = """
UPDATE peer_slots SET expires = %(expires)s
WHERE replica = %(replica)s AND bucket = ANY(%(buckets)s) AND expires > %(now)s
RETURNING bucket
"""

#: Give back slots of a lease down to ``slots`` (fewer is always safe: no lock).
SHRINK_SLOTS: Final = """
UPDATE peer_slots SET slots = %(slots)s
WHERE bucket = %(bucket)s AND replica = %(replica)s AND slots > %(slots)s
"""

#: Give back ``replica``'s leases of ``buckets`` (idle), or all of them (None: it stops).
FORGET_SLOTS: Final = """
DELETE FROM peer_slots
WHERE replica = %(replica)s AND (%(buckets)s::text[] IS NULL OR bucket = ANY(%(buckets)s))
"""


#: The advisory lock :func:`slots_lock_key` names, for the rest of the transaction: the
#: statement before :data:`GRANT_SLOTS`.
LOCK_SLOTS: Final = "SELECT pg_advisory_xact_lock(%(lock)s)"


def slots_lock_key(bucket: str) -> int:
    """The advisory lock a grant of ``bucket``'s slots holds (``bucket_key`` digest in):
    ``pg_advisory_xact_lock``'s signed 64 bits, in a space of their own (the store's
    ``lock(name)`` keys hash the bare name)."""
    digest = hashlib.sha256(b"peer_slots:" + bucket.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
