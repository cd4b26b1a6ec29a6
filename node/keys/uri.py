"""PKCS#11 URIs (RFC 7512) naming a key in a token: parsed strictly, no I/O.

``pkcs11:token=bxnode;object=signing-2026`` names the private key labelled
``signing-2026`` in the token labelled ``bxnode``.  Supported path attributes (RFC 7512
§2.3): ``token``, ``manufacturer``, ``serial``, ``model`` (which token), ``object``
(CKA_LABEL), ``id`` (CKA_ID, bytes), ``type`` (``private`` only) and ``slot-id``.  At least
``token`` (or ``serial``) and ``object`` (or ``id``) must be given.

Refused, each with a sentence saying why: an attribute given twice (§2.3 "MUST NOT"),
an unknown or vendor (``x-``) attribute (we could not honour it: fail closed), a value
that is not properly percent-encoded (§2.3 ``pk11-pchar``), and any query component.
The PIN never comes from the URI (``pin-value`` would put a secret in node.toml): it
comes from ``[keys] pkcs11_pin_env`` or ``pkcs11_pin_file``; the module from
``[keys] pkcs11_module``.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from node.core.errors import ConfigError

__all__ = ["MAX_URI_LEN", "Pkcs11Uri", "is_pkcs11_uri", "parse_pkcs11_uri"]

SCHEME = "pkcs11:"
MAX_URI_LEN = 1024
MAX_VALUE_BYTES = 256

# RFC 7512 §2.3: pk11-pchar = unreserved / pk11-res-avail / pct-encoded, where
# pk11-res-avail = ":" / "[" / "]" / "@" / "!" / "$" / "'" / "(" / ")" / "*" / "+" / "," / "="
# and the path also allows "&" (pk11-path-res-avail).
_PCHAR = frozenset(string.ascii_letters + string.digits + "-._~" + ":[]@!$'()*+,=&")
_TEXT_ATTRS = ("token", "manufacturer", "serial", "model", "object")
_ATTRS = frozenset((*_TEXT_ATTRS, "id", "type", "slot-id"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Pkcs11Uri:
    """The parts of a PKCS#11 URI that select one token and one private key."""

    text: str
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    id: bytes | None = None
    slot_id: int | None = None

    def __str__(self) -> str:
        return self.text


def is_pkcs11_uri(text: str) -> bool:
    return text[:len(SCHEME)].lower() == SCHEME


def _uri_refused(text: str, why: str) -> ConfigError:
    return ConfigError(f"the PKCS#11 URI {text[:80]!r} {why}", reason="bad_pkcs11_uri")


def _decode(text: str, name: str, value: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%":
            pair = value[i + 1:i + 3]
            if len(pair) != 2 or any(h not in string.hexdigits for h in pair):
                raise _uri_refused(text, f"has a broken percent-escape in {name}")
            out.append(int(pair, 16))
            i += 3
            continue
        if c not in _PCHAR:
            raise _uri_refused(text, f"has {c!r} in {name}; percent-encode it (RFC 7512 §2.3)")
        out.append(ord(c))
        i += 1
    if len(out) > MAX_VALUE_BYTES:
        raise _uri_refused(text, f"has {name}= longer than {MAX_VALUE_BYTES} bytes")
    return bytes(out)


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """``text`` as a :class:`Pkcs11Uri`; :class:`ConfigError` (``bad_pkcs11_uri``) otherwise."""
    if len(text) > MAX_URI_LEN:
        raise _uri_refused(text, f"is longer than {MAX_URI_LEN} characters")
    if not is_pkcs11_uri(text):
        raise _uri_refused(text, "does not start with 'pkcs11:'")
    body = text[len(SCHEME):]
    if "?" in body:
        query = body.split("?", 1)[1]
        if "pin-value" in query:
            raise _uri_refused(text, "holds a PIN: put it in the environment variable named "
                                     "by [keys] pkcs11_pin_env or the 0600 file named by "
                                     "pkcs11_pin_file")
        raise _uri_refused(text, "has a query component; name the module in [keys] "
                                 "pkcs11_module and the PIN in pkcs11_pin_env or "
                                 "pkcs11_pin_file")
    if "#" in body:
        raise _uri_refused(text, "has a fragment")
    fields: dict[str, bytes] = {}
    for part in body.split(";") if body else ():
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise _uri_refused(text, f"has {part[:40]!r}, not an attribute=value pair")
        if name not in _ATTRS:
            raise _uri_refused(text, f"has the attribute {name!r}, which bxnode does not support "
                             "(token, manufacturer, serial, model, object, id, type, slot-id)")
        if name in fields:
            raise _uri_refused(text, f"gives {name} twice")
        fields[name] = _decode(text, name, value)
    text_of: dict[str, str] = {}
    for name in _TEXT_ATTRS:
        if name in fields:
            try:
                text_of[name] = fields[name].decode("utf-8")
            except UnicodeDecodeError:
                raise _uri_refused(text, f"has {name}= that is not UTF-8") from None
    ckid = fields.get("id")
    if ckid is not None and not ckid:
        raise _uri_refused(text, "has an empty id")
    if "type" in fields and fields["type"] != b"private":
        raise _uri_refused(text, "must name a private key (type=private)")
    slot_id: int | None = None
    if "slot-id" in fields:
        slot = fields["slot-id"].decode("ascii", "replace")
        if not slot.isdigit() or len(slot) > 20:
            raise _uri_refused(text, "has a slot-id that is not a decimal number")
        slot_id = int(slot)
    if not (text_of.get("token") or text_of.get("serial") or slot_id is not None):
        raise _uri_refused(text, "names no token (give token=LABEL, serial= or slot-id=)")
    if not (text_of.get("object") or ckid):
        raise _uri_refused(text, "names no key (give object=LABEL or id=)")
    return Pkcs11Uri(text=text, token=text_of.get("token"),
                     manufacturer=text_of.get("manufacturer"), serial=text_of.get("serial"),
                     model=text_of.get("model"), object=text_of.get("object"), id=ckid,
                     slot_id=slot_id)
