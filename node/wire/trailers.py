"""An RPC error's trailing metadata as a dict, whichever grpc flavour raised it.

The synchronous API gives a tuple of ``_Metadatum(key, value)`` named tuples, grpc.aio an
``aio.Metadata`` of ``(key, value)`` pairs, a test double perhaps nothing: all unpack as
pairs.  The first value of a repeated key wins (as ``bxnode-reason`` is sent once).
"""

from __future__ import annotations

__all__ = ["reason", "trailers"]


def trailers(err: object) -> dict[str, str | bytes]:
    """``err.trailing_metadata()`` as ``{key: value}``; ``{}`` when it has none."""
    get = getattr(err, "trailing_metadata", None)
    md = get() if callable(get) else None
    out: dict[str, str | bytes] = {}
    for key, value in md or ():
        out.setdefault(str(key), value)
    return out


def reason(err: object) -> str:
    """The peer's ``bxnode-reason`` on an RPC error, "" when it sent none."""
    value = trailers(err).get("bxnode-reason", "")
    return value if isinstance(value, str) else value.decode("ascii", "replace")
