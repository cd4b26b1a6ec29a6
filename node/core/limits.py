"""Every bound on input, in one place, next to the parsers that enforce them.

Wire-level bounds (message bytes) are enforced by the gRPC server and by
:mod:`node.wire`; field bounds by :mod:`node.core.model` constructors.
"""

from __future__ import annotations

__all__ = [
    "MAX_BATCH_ITEMS_HARD",
    "MAX_CASE_REF_LEN",
    "MAX_DOC_NUMBER_LEN",
    "MAX_ENVELOPE_BYTES",
    "MAX_ID_LEN",
    "MAX_LEGAL_BASIS_LEN",
    "MAX_NAME_LEN",
    "MAX_NONCE_LEN",
    "MAX_PAYLOAD_TYPE_LEN",
    "MAX_REQUEST_BYTES",
    "MIN_NONCE_LEN",
    "SIGNATURE_LEN",
]

#: The largest gRPC message the server accepts (either direction).
MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: The largest signed payload inside an envelope.
MAX_ENVELOPE_BYTES = MAX_REQUEST_BYTES - 4096
#: A batch may never exceed this, whatever the configuration says.
MAX_BATCH_ITEMS_HARD = 10_000
MAX_ID_LEN = 64
MAX_PAYLOAD_TYPE_LEN = 64
MAX_CASE_REF_LEN = 128
MAX_LEGAL_BASIS_LEN = 256
MAX_NAME_LEN = 100
MAX_DOC_NUMBER_LEN = 20
MIN_NONCE_LEN = 16
MAX_NONCE_LEN = 64
SIGNATURE_LEN = 64
