"""The node's Ed25519 key in a PKCS#11 token (python-pkcs11; tested on SoftHSM2).

PKCS#11 3.0 names Ed25519 keys ``CKK_EC_EDWARDS`` with ``CKA_EC_PARAMS`` the curve
(PKCS#11 3.0 §2.3.10: the DER OID 1.3.101.112 of RFC 8410, or the PrintableString
``edwards25519``), the public key in ``CKA_EC_POINT`` (a DER OCTET STRING of the 32 raw
bytes; some tokens store them bare) and signs with ``CKM_EDDSA`` without parameters: pure
Ed25519 (RFC 8032 §5.1.6).  A token signature therefore equals the signature of the same
key held in a file, and verifies with every verifier bxnode has.

Opening a key (:meth:`Pkcs11Signer.open`): load the module, pick the one token the URI
names, log in with the PIN (from an environment variable or a 0600 file, never the
configuration), find the one private key, check it is Ed25519, read its public key from
the matching public-key object (same label and id), then sign a
random challenge and verify it: a key and public key that do not belong together are
refused before the node serves.  Each failure is a :class:`ConfigError` with one sentence
and its own reason code.

Sessions: PKCS#11 login is per token and per process (PKCS#11 §5.6 C_Login), so one
logged-in session per token is kept for the process and shared; every call into the
module holds one lock (a session runs one operation at a time, §5.1).  When a sign fails
because the token went away (unplugged, session closed), the session is reopened once
and the key found again (its public key must be the same); if that fails too, the sign
raises :class:`EnvironmentFault` ``signing_key_unavailable``.

The TLS key cannot live in the token: gRPC Python takes the private key only as PEM bytes
(``grpc.ssl_server_credentials``), and the ``engine:`` key prefix of gRPC core exists only
in builds against OpenSSL with ENGINE support, while the grpcio wheels are built with
BoringSSL, which has no ENGINE (see README "Hardware keys").
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import pkcs11
import pkcs11.exceptions as p11e
import structlog
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from node.core.errors import ConfigError, EnvironmentFault
from node.core.signer import signer_key_id
from node.keys.ref import Pkcs11Key
from node.keys.uri import Pkcs11Uri
from node.store.keys import check_private_file

__all__ = ["ED25519_EC_PARAMS", "Pkcs11Key", "Pkcs11Signer", "generate_key", "import_seed",
           "read_pin"]

log = structlog.get_logger("bxnode.keys.pkcs11")

#: CKA_EC_PARAMS naming Ed25519: the DER OID 1.3.101.112 (RFC 8410 §3), or the DER
#: PrintableString "edwards25519" (PKCS#11 3.0 §2.3.10 allows both).
ED25519_EC_PARAMS = bytes.fromhex("06032b6570")
_ED25519_CURVE_NAME = b"\x13\x0cedwards25519"
MAX_PIN_LEN = 256

_LOCK = threading.RLock()
#: (module, token serial) -> (the logged-in session, HMAC of its PIN under _PIN_MAC_KEY)
_SESSIONS: dict[tuple[str, bytes], tuple[Any, bytes]] = {}
_PIN_MAC_KEY = secrets.token_bytes(32)

_GONE = (p11e.SessionHandleInvalid, p11e.SessionClosed, p11e.DeviceRemoved,
         p11e.TokenNotPresent, p11e.DeviceError, p11e.UserNotLoggedIn,
         p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid)


def read_pin(key: Pkcs11Key) -> str:
    """The user PIN: ``$pin_env``, or the first line of ``pin_file`` (mode 0600)."""
    if key.pin_env is not None:
        pin = os.environ.get(key.pin_env, "")
        if not pin:
            raise ConfigError(f"no PIN for the PKCS#11 token: ${key.pin_env} is not set "
                              "([keys] pkcs11_pin_env)", reason="pkcs11_no_pin")
    else:
        assert key.pin_file is not None
        check_private_file(key.pin_file, "PKCS#11 PIN file")
        try:
            pin = key.pin_file.read_text(encoding="utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError(f"PKCS#11 PIN file {key.pin_file} is not UTF-8 text",
                              reason="pkcs11_no_pin") from None
        if not pin:
            raise ConfigError(f"PKCS#11 PIN file {key.pin_file} is empty",
                              reason="pkcs11_no_pin")
    if len(pin) > MAX_PIN_LEN or "\n" in pin or "\x00" in pin:
        raise ConfigError("the PKCS#11 PIN is not one line of at most "
                          f"{MAX_PIN_LEN} characters", reason="pkcs11_no_pin")
    return pin


def _lib(module: Path) -> Any:
    if not module.is_file():
        raise ConfigError(f"PKCS#11 module {module} does not exist ([keys] pkcs11_module)",
                          reason="pkcs11_module_unavailable")
    try:
        return pkcs11.lib(str(module))
    except p11e.PKCS11Error as exc:
        raise ConfigError(f"PKCS#11 module {module} cannot be loaded ({exc or type(exc).__name__})",
                          reason="pkcs11_module_unavailable") from None


def _token(lib: Any, uri: Pkcs11Uri) -> Any:
    try:
        found = [t for t in lib.get_tokens(token_label=uri.token)
                 if (uri.serial is None or t.serial.decode("ascii", "replace").strip()
                     == uri.serial)
                 and (uri.manufacturer is None or t.manufacturer_id == uri.manufacturer)
                 and (uri.model is None or t.model == uri.model)
                 and (uri.slot_id is None or t.slot.slot_id == uri.slot_id)]
    except p11e.PKCS11Error as exc:
        raise ConfigError(f"PKCS#11 tokens cannot be listed ({type(exc).__name__})",
                          reason="pkcs11_error") from None
    if not found:
        raise ConfigError(f"no PKCS#11 token matches {uri.text} (is it plugged in and "
                          "initialised?)", reason="pkcs11_token_not_found")
    if len(found) > 1:
        raise ConfigError(f"{len(found)} PKCS#11 tokens match {uri.text}; add serial= to "
                          "the URI", reason="pkcs11_token_ambiguous")
    return found[0]


def _login_error(exc: p11e.PKCS11Error, uri: Pkcs11Uri) -> ConfigError:
    if isinstance(exc, (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange)):
        return ConfigError(f"the PIN for the PKCS#11 token of {uri.text} is wrong",
                           reason="pkcs11_wrong_pin")
    if isinstance(exc, p11e.PinLocked):
        return ConfigError(f"the PKCS#11 token of {uri.text} has locked its user PIN",
                           reason="pkcs11_pin_locked")
    return ConfigError(f"cannot log in to the PKCS#11 token of {uri.text} "
                       f"({type(exc).__name__})", reason="pkcs11_error")


def _session(key: Pkcs11Key, *, fresh: bool = False) -> tuple[Any, Any]:
    """The process's logged-in session on the token ``key`` names, and the token."""
    lib = _lib(key.module)
    token = _token(lib, key.uri)
    pin = read_pin(key)
    mac = hmac.digest(_PIN_MAC_KEY, pin.encode("utf-8"), "sha256")
    where = (str(key.module), token.serial)
    cached = _SESSIONS.get(where)
    if cached is not None and not fresh:
        if not hmac.compare_digest(cached[1], mac):
            raise ConfigError(f"the PIN for the PKCS#11 token of {key.uri.text} is wrong "
                              "(this process logged in with another)", reason="pkcs11_wrong_pin")
        return cached[0], token
    if cached is not None:
        _SESSIONS.pop(where)
        try:
            cached[0].close()
        except p11e.PKCS11Error:
            pass
    try:
        session = token.open(rw=True, user_pin=pin)
    except (p11e.TokenWriteProtected, p11e.SessionReadOnly):
        try:
            session = token.open(user_pin=pin)
        except p11e.PKCS11Error as exc:
            raise _login_error(exc, key.uri) from None
    except p11e.PKCS11Error as exc:
        raise _login_error(exc, key.uri) from None
    _SESSIONS[where] = (session, mac)
    return session, token


def _select(key: Pkcs11Key) -> dict[Attribute, Any]:
    attrs: dict[Attribute, Any] = {}
    if key.uri.object is not None:
        attrs[Attribute.LABEL] = key.uri.object
    if key.uri.id is not None:
        attrs[Attribute.ID] = key.uri.id
    return attrs


def _find_private(session: Any, key: Pkcs11Key) -> Any:
    sel = _select(key)
    found = list(session.get_objects({**sel, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    if not found:
        others = list(session.get_objects(sel))
        if others:
            raise ConfigError(f"the PKCS#11 object of {key.uri.text} is not a private key",
                              reason="pkcs11_not_ed25519")
        raise ConfigError(f"the PKCS#11 token holds no private key matching {key.uri.text}",
                          reason="pkcs11_object_not_found")
    if len(found) > 1:
        raise ConfigError(f"{len(found)} private keys in the token match {key.uri.text}; "
                          "add id= to the URI", reason="pkcs11_object_ambiguous")
    priv = found[0]
    key_type = priv[Attribute.KEY_TYPE]
    if key_type != KeyType.EC_EDWARDS:
        name = getattr(key_type, "name", str(key_type))
        article = "an" if name[:1] in "AEIOU" else "a"  # an EC key, an RSA key, a DSA key
        raise ConfigError(f"the PKCS#11 key of {key.uri.text} is {article} {name} key, "
                          "not Ed25519",
                          reason="pkcs11_not_ed25519")
    params = bytes(priv[Attribute.EC_PARAMS])
    if params not in (ED25519_EC_PARAMS, _ED25519_CURVE_NAME):
        raise ConfigError(f"the PKCS#11 key of {key.uri.text} is an Edwards key on another "
                          "curve (Ed448?), not Ed25519", reason="pkcs11_not_ed25519")
    return priv


def _raw_point(value: bytes) -> bytes | None:
    if len(value) == 32:
        return value
    if len(value) == 34 and value[:2] == b"\x04\x20":
        return value[2:]
    return None


def _public_key(session: Any, priv: Any, key: Pkcs11Key) -> bytes:
    sel = _select(key)
    try:
        priv_id = bytes(priv[Attribute.ID])
    except p11e.PKCS11Error:
        priv_id = b""
    if priv_id:
        sel = {**sel, Attribute.ID: priv_id}
    pubs = list(session.get_objects({**sel, Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
    for pub in pubs:
        raw = _raw_point(bytes(pub[Attribute.EC_POINT]))
        if raw is not None:
            return raw
    raise ConfigError(f"the PKCS#11 token holds no Ed25519 public key beside {key.uri.text} "
                      "(a public-key object with the same label and id)",
                      reason="pkcs11_no_public_key")


def _verifies(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


class Pkcs11Signer:
    """A :class:`~node.core.signer.Signer` whose private key stays in a PKCS#11 token."""

    def __init__(self, *, key: Pkcs11Key, session: Any, private: Any, public_key: bytes) -> None:
        self._key = key
        self._session = session
        self._private = private
        self._public = public_key

    @classmethod
    def open(cls, key: Pkcs11Key) -> Pkcs11Signer:
        with _LOCK:
            session, _ = _session(key)
            try:
                priv = _find_private(session, key)
                public = _public_key(session, priv, key)
                challenge = b"bxnode pkcs11 self-test v1\x00" + secrets.token_bytes(32)
                sig = bytes(priv.sign(challenge, mechanism=Mechanism.EDDSA))
            except p11e.MechanismInvalid:
                raise ConfigError(f"the PKCS#11 token of {key.uri.text} cannot sign with "
                                  "CKM_EDDSA", reason="pkcs11_not_ed25519") from None
            except p11e.PKCS11Error as exc:
                raise ConfigError(f"the PKCS#11 key of {key.uri.text} cannot be used "
                                  f"({type(exc).__name__})", reason="pkcs11_error") from None
        if not _verifies(public, challenge, sig):
            raise ConfigError(f"the PKCS#11 key of {key.uri.text} does not match its public "
                              "key object", reason="pkcs11_key_mismatch")
        signer = cls(key=key, session=session, private=priv, public_key=public)
        log.info("pkcs11_key_opened", uri=key.uri.text, key_id=signer_key_id(signer))
        return signer

    @property
    def public_key(self) -> bytes:
        return self._public

    @property
    def uri(self) -> str:
        return self._key.uri.text

    def sign(self, message: bytes) -> bytes:
        with _LOCK:
            try:
                return bytes(self._private.sign(message, mechanism=Mechanism.EDDSA))
            except _GONE as exc:
                log.warning("pkcs11_session_lost", uri=self._key.uri.text,
                            error=type(exc).__name__)
            except p11e.PKCS11Error as exc:
                raise EnvironmentFault(f"the PKCS#11 token failed to sign "
                                       f"({type(exc).__name__})",
                                       reason="signing_key_unavailable") from None
            try:  # once more on a fresh session: the token was re-plugged, say
                session, _ = _session(self._key, fresh=True)
                priv = _find_private(session, self._key)
                if _public_key(session, priv, self._key) != self._public:
                    raise ConfigError("the PKCS#11 key changed under the running node",
                                      reason="pkcs11_key_mismatch")
                self._session, self._private = session, priv
                return bytes(priv.sign(message, mechanism=Mechanism.EDDSA))
            except (ConfigError, p11e.PKCS11Error) as exc:
                why = str(exc) if isinstance(exc, ConfigError) else type(exc).__name__
                raise EnvironmentFault(f"the signing key's PKCS#11 token is unavailable ({why})",
                                       reason="signing_key_unavailable") from None

    def __repr__(self) -> str:
        return f"Pkcs11Signer(uri={self._key.uri.text!r}, key_id={signer_key_id(self)})"


def _check_free(session: Any, key: Pkcs11Key) -> None:
    if list(session.get_objects(_select(key))):
        raise ConfigError(f"the PKCS#11 token already holds an object matching {key.uri.text}; "
                          "name a new object for the new key", reason="pkcs11_object_exists")


def _ids(key: Pkcs11Key) -> bytes:
    """CKA_ID pairing the two halves: the URI's id, else 16 random bytes."""
    return key.uri.id if key.uri.id is not None else secrets.token_bytes(16)


def _private_template(key: Pkcs11Key, ckid: bytes) -> dict[Attribute, Any]:
    return {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
            Attribute.LABEL: key.uri.object or "", Attribute.ID: ckid}


def generate_key(key: Pkcs11Key) -> bytes:
    """Generate a new Ed25519 key pair in the token (CKM_EC_EDWARDS_KEY_PAIR_GEN), never
    extractable; its raw public key."""
    with _LOCK:
        session, _ = _session(key)
        _check_free(session, key)
        ckid = _ids(key)
        try:
            session.generate_keypair(
                KeyType.EC_EDWARDS, store=True, label=key.uri.object, id=ckid,
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                public_template={Attribute.EC_PARAMS: ED25519_EC_PARAMS,
                                 Attribute.TOKEN: True, Attribute.VERIFY: True},
                private_template=_private_template(key, ckid))
        except p11e.PKCS11Error as exc:
            raise ConfigError(f"the PKCS#11 token cannot generate an Ed25519 key "
                              f"({type(exc).__name__})", reason="pkcs11_error") from None
    return Pkcs11Signer.open(key).public_key


def import_seed(key: Pkcs11Key, seed: bytes) -> bytes:
    """Import a key file's 32-byte seed as a sensitive, non-extractable Ed25519 key (CKA_VALUE
    is the seed, PKCS#11 3.0 §2.3.10); its raw public key."""
    if len(seed) != 32:
        raise ConfigError("an Ed25519 seed is 32 bytes", reason="bad_signing_key")
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    with _LOCK:
        session, _ = _session(key)
        _check_free(session, key)
        ckid = _ids(key)
        try:
            session.create_object({**_private_template(key, ckid),
                                   Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                   Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                                   Attribute.EC_PARAMS: ED25519_EC_PARAMS,
                                   Attribute.VALUE: seed})
            session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                   Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                                   Attribute.TOKEN: True, Attribute.VERIFY: True,
                                   Attribute.LABEL: key.uri.object or "", Attribute.ID: ckid,
                                   Attribute.EC_PARAMS: ED25519_EC_PARAMS,
                                   Attribute.EC_POINT: b"\x04\x20" + public})
        except p11e.PKCS11Error as exc:
            raise ConfigError(f"the PKCS#11 token cannot import the key "
                              f"({type(exc).__name__})", reason="pkcs11_error") from None
    if Pkcs11Signer.open(key).public_key != public:
        raise ConfigError("the imported key does not match the seed", reason="pkcs11_key_mismatch")
    return public

