"""A development auditor identity in keys/dev/auditor.

``python -m node.federation.devkeys_auditor``.

Additive: creates ``keys/dev/auditor/`` (Ed25519 signing key, TLS key and a certificate from
the existing development CA, organisation "bxnode DEVELOPMENT ONLY") and its member entry
``member.json`` (role ``auditor``) only if missing; every existing development key stays as
it is.  Tests and the demo add the entry to their members file; the auditor is the
data-protection authority "KAZ-DPA" of the demo federation.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from node.federation import pki

__all__ = ["AUDITOR_ID", "add_dev_auditor"]

ROOT = Path(__file__).resolve().parents[2]
DEV_DIR = ROOT / "keys" / "dev"
AUDITOR_ID = "KAZ-DPA"


def add_dev_auditor(dev_dir: Path = DEV_DIR) -> Path:
    """Create keys/dev/auditor if missing; return its folder."""
    d = dev_dir / "auditor"
    if (d / "member.json").exists():
        return d
    d.mkdir(exist_ok=True)
    ca_key = load_pem_private_key((dev_dir / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((dev_dir / "ca.crt").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    sk = pki.new_signing_key_file(d / "signing.key")
    tls_key = pki.new_tls_key()
    cert = pki.issue_cert(cn=AUDITOR_ID, org=pki.DEV_ORG, key=tls_key,
                          hosts=["127.0.0.1", "localhost"], ca=(ca_key, ca_cert), days=3650)
    pki.write_tls(d / "tls.key", d / "tls.crt", tls_key, cert)
    entry = {"node_id": AUDITOR_ID, "country": "KAZ",
             "agency": "Personal data protection authority, Kazakhstan (development)",
             "endpoint": "", "roles": ["auditor"], "contact": "KAZ-DPA inspection desk",
             "signing_keys": [{"public_key": base64.b64encode(bytes(sk.verify_key)).decode()}],
             "tls_cert_sha256": [pki.cert_fingerprint((d / "tls.crt").read_bytes())]}
    (d / "member.json").write_text(json.dumps(entry, indent=2) + "\n")
    return d


if __name__ == "__main__":
    print(f"auditor identity in {add_dev_auditor()}")
