"""Keys and certificates: Ed25519 signing keys (PyNaCl) and TLS material (cryptography).

* A signing key file holds the 32-byte Ed25519 seed as 64 hex characters, mode 0600.
* TLS keys are ECDSA P-256, PEM, mode 0600.  Certificates carry serverAuth and
  clientAuth, since every node is both a server and a client of its peers.
* A TLS identity is the SHA-256 of the certificate's DER bytes, in hex.
* Development keys (keys/dev/) carry the organisation "bxnode DEVELOPMENT ONLY";
  :func:`is_dev_material` recognises them wherever they are copied to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from pathlib import Path

import nacl.signing
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from node.core.envelope import key_id_for
from node.core.errors import ConfigError
from node.store.keys import check_private_file, write_private

__all__ = [
    "DEV_ORG",
    "TlsMaterial",
    "cert_fingerprint",
    "is_dev_material",
    "issue_cert",
    "load_signing_key",
    "new_ca",
    "new_signing_key_file",
    "new_tls_key",
    "write_tls",
]

DEV_ORG = "bxnode DEVELOPMENT ONLY"


def new_signing_key_file(path: Path) -> nacl.signing.SigningKey:
    key = nacl.signing.SigningKey.generate()
    write_private(path, bytes(key).hex() + "\n")
    return key


def load_signing_key(path: Path) -> nacl.signing.SigningKey:
    check_private_file(path, "signing key file")
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise ConfigError(f"signing key file {path} is not hex", reason="bad_signing_key") from None
    if len(seed) != 32:
        raise ConfigError(f"signing key file {path} must hold a 32-byte seed",
                          reason="bad_signing_key")
    return nacl.signing.SigningKey(seed)


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_ca(cn: str, org: str, *, days: int = 3650) -> tuple[ec.EllipticCurvePrivateKey,
                                                            x509.Certificate]:
    key = new_tls_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org)).issuer_name(_name(cn, org))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_cert(
    *,
    cn: str,
    org: str,
    key: ec.EllipticCurvePrivateKey,
    hosts: list[str],
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
    days: int = 825,
) -> x509.Certificate:
    """A node certificate for ``hosts``; self-signed when ``ca`` is None."""
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    issuer_key, issuer_name = (key, _name(cn, org)) if ca is None else (ca[0], ca[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org)).issuer_name(issuer_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def write_tls(key_path: Path, cert_path: Path, key: ec.EllipticCurvePrivateKey,
              cert: x509.Certificate) -> None:
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def cert_fingerprint(pem: bytes) -> str:
    """SHA-256 over the DER encoding of the first certificate in ``pem``, lower-case hex."""
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def is_dev_material(path: Path) -> bool:
    """True for anything under a keys/dev folder, or a certificate issued to or by the dev org."""
    resolved = path.resolve()
    if any(p.name == "dev" and p.parent.name == "keys" for p in resolved.parents):
        return True
    try:
        data = resolved.read_bytes()
    except OSError:
        return False
    if len(data) in (64, 65) and not data.startswith(b"-----"):
        from node.federation import _devkeys

        dev_ids = _devkeys.DEV_SIGNING_KEY_IDS | getattr(_devkeys, "DEV_GOVERNANCE_KEY_IDS",
                                                         frozenset())
        try:
            seed = bytes.fromhex(data.decode().strip())
            if len(seed) == 32:
                pub = bytes(nacl.signing.SigningKey(seed).verify_key)
                return key_id_for(pub) in dev_ids
        except ValueError:
            return False
    if b"BEGIN CERTIFICATE" in data:
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            return False
        for name in (cert.subject, cert.issuer):
            for attr in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME):
                if attr.value == DEV_ORG:
                    return True
    return False


class TlsMaterial:
    """PEM bytes for a gRPC channel or server, read once at start-up."""

    def __init__(self, *, cert: bytes, key: bytes, ca: bytes) -> None:
        self.cert = cert
        self.key = key
        self.ca = ca
        self.fingerprint = cert_fingerprint(cert)

    @classmethod
    def from_files(cls, *, cert: Path, key: Path, ca: Path) -> TlsMaterial:
        check_private_file(key, "TLS key file")
        for p in (cert, ca):
            if not p.exists():
                raise ConfigError(f"TLS file {p} does not exist", reason="missing_file")
        return cls(cert=cert.read_bytes(), key=key.read_bytes(), ca=ca.read_bytes())
