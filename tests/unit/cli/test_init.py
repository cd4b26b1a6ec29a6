"""``bxnode init``: a complete node or nothing at all."""

from __future__ import annotations

import base64
import json
import stat
import tomllib
from pathlib import Path

import nacl.signing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from node.config import load_config
from node.core.envelope import key_id_for
from node.federation import pki
from node.federation.members_file import load_members
from tests.federation import DEV
from tests.unit.cli._support import Bx, Run, assert_one_sentence, audit_bodies, counts

SECRETS = ("signing.key", "tls.key", "db.key", "node.db")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _init(bx: Bx, d: Path, *extra: str) -> Run:
    return bx("init", "--node-dir", str(d), "--node-id", "KAZ-BS", "--country", "KAZ", *extra)


def test_init_creates_a_complete_node(node: Path) -> None:
    assert sorted(p.name for p in node.iterdir()) == [
        "ca.crt", "db.key", "members.json", "node.db", "node.db.lock", "node.toml", "policies",
        "signing.key", "tls.crt", "tls.key"]
    assert _mode(node / "node.db.lock") == 0o600  # the writers' queue (node/store/sqlcipher)
    for name in SECRETS:
        assert _mode(node / name) == 0o600, name
    assert _mode(node) == 0o700
    doc = tomllib.loads((node / "node.toml").read_text())
    assert doc["node"] == {"id": "KAZ-BS", "country": "KAZ", "agency": "", "contact": "",
                           "dev_mode": False}
    assert doc["server"]["listen"] == "127.0.0.1:0"
    assert doc["client"]["operator"] == "officer-1"
    cfg = load_config(node)
    assert (cfg.node_id, cfg.dev_mode, cfg.db_key_file) == ("KAZ-BS", False, node / "db.key")
    # the members file lists exactly this node, with its real keys
    members = json.loads((node / "members.json").read_text())["members"]
    assert [m["node_id"] for m in members] == ["KAZ-BS"]
    seed = bytes.fromhex((node / "signing.key").read_text().strip())
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    assert base64.b64decode(members[0]["signing_keys"][0]["public_key"]) == public
    assert members[0]["tls_cert_sha256"] == [pki.cert_fingerprint((node / "tls.crt").read_bytes())]
    me = load_members(node / "members.json").member("KAZ-BS")
    assert [k.key_id for k in me.keys] == [key_id_for(public)]
    # an encrypted, empty database with an empty audit log; a policy that denies everything
    assert counts(node) == (0, 0)
    assert audit_bodies(node) == []
    assert json.loads((node / "policies" / "data.json").read_text()) == {
        "bxnode": {"agreements": []}}
    assert not list((node / "policies").rglob("*_test.rego"))
    assert list((node / "policies" / "bxnode").glob("*.rego"))


def test_init_json_output(tmp_path: Path, bx: Bx) -> None:
    r = _init(bx, tmp_path / "n", "--json", "--agency", "Border Service", "--contact", "desk 1")
    assert r.rc == 0 and r.err == ""
    out = json.loads(r.out)
    assert set(out) == {"node_dir", "member"}
    assert out["node_dir"] == str((tmp_path / "n").resolve())
    assert (out["member"]["node_id"], out["member"]["agency"], out["member"]["contact"]) == (
        "KAZ-BS", "Border Service", "desk 1")


def test_init_text_output_names_the_member_entry(tmp_path: Path, bx: Bx) -> None:
    r = _init(bx, tmp_path / "n")
    assert r.rc == 0
    assert r.out.startswith(f"initialised node KAZ-BS in {(tmp_path / 'n').resolve()}\n")
    assert '"node_id": "KAZ-BS"' in r.out


def test_init_refuses_to_overwrite(node: Path, bx: Bx) -> None:
    before = {p.name: p.read_bytes() for p in node.iterdir() if p.is_file()}
    r = _init(bx, node)
    assert assert_one_sentence(r) == (
        f"bxnode: {node} already holds a node; refusing to overwrite it")
    assert {p.name: p.read_bytes() for p in node.iterdir() if p.is_file()} == before


def test_init_refuses_a_folder_with_leftover_key_files(tmp_path: Path, bx: Bx) -> None:
    d = tmp_path / "n"
    d.mkdir()
    (d / "signing.key").write_text("keep me\n")
    r = _init(bx, d)
    assert assert_one_sentence(r) == f"bxnode: {d} already holds signing.key; use an empty folder"
    assert sorted(p.name for p in d.iterdir()) == ["signing.key"]
    assert (d / "signing.key").read_text() == "keep me\n"


@pytest.mark.parametrize(("args", "message"), [
    (("--node-id", "bad id", "--country", "KAZ"),
     "bxnode: node id must be 1-64 characters of A-Z a-z 0-9 . _ : @ -"),
    (("--node-id", "x" * 65, "--country", "KAZ"),
     "bxnode: node id must be 1-64 characters of A-Z a-z 0-9 . _ : @ -"),
    (("--node-id", "KAZ-BS", "--country", "ZZZ"),
     "bxnode: country must be an ICAO 9303 three-letter code"),
    (("--node-id", "KAZ-BS", "--country", "kaz"),
     "bxnode: country must be an ICAO 9303 three-letter code"),
    (("--node-id", "KAZ-BS", "--country", "KAZ", "--dev-keys", str(DEV / "kaz")),
     "bxnode: --dev-keys needs --dev: development keys are refused otherwise"),
    (("--node-id", "KAZ-BS", "--country", "KAZ", "--ca-cert", str(DEV / "ca.crt")),
     "bxnode: --ca-cert and --ca-key must be given together"),
    (("--node-id", "KAZ-BS", "--country", "KAZ", "--ca-key", str(DEV / "ca.key")),
     "bxnode: --ca-cert and --ca-key must be given together"),
])
def test_init_bad_input_writes_nothing(tmp_path: Path, bx: Bx, args: tuple[str, ...],
                                       message: str) -> None:
    d = tmp_path / "n"
    r = bx("init", "--node-dir", str(d), *args)
    assert assert_one_sentence(r) == message
    assert not d.exists()


def test_init_missing_members_or_policy_dir(tmp_path: Path, bx: Bx) -> None:
    d = tmp_path / "n"
    r = _init(bx, d, "--members", str(tmp_path / "absent.json"))
    assert assert_one_sentence(r) == (
        f"bxnode: members file {tmp_path / 'absent.json'} does not exist")
    r = _init(bx, d, "--policy-dir", str(tmp_path / "nopolicies"))
    assert assert_one_sentence(r) == (
        f"bxnode: policy folder {tmp_path / 'nopolicies'} does not exist")
    assert not d.exists()


def test_init_bad_ca_files(tmp_path: Path, bx: Bx) -> None:
    d = tmp_path / "n"
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    r = _init(bx, d, "--ca-cert", str(tmp_path / "absent.pem"), "--ca-key", str(junk))
    assert assert_one_sentence(r) == (
        f"bxnode: --ca-cert {tmp_path / 'absent.pem'} is not a readable PEM certificate")
    r = _init(bx, d, "--ca-cert", str(DEV / "ca.crt"), "--ca-key", str(junk))
    assert assert_one_sentence(r) == (
        f"bxnode: --ca-key {junk} is not a readable unencrypted PEM private key")
    assert not d.exists()


def test_init_with_a_ca_issues_the_certificate_from_it(tmp_path: Path, bx: Bx) -> None:
    ca_key, ca_cert = pki.new_ca("Test Federation CA", "Test Federation")
    (tmp_path / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(ca_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    d = tmp_path / "n"
    r = _init(bx, d, "--ca-cert", str(tmp_path / "ca.crt"), "--ca-key", str(tmp_path / "ca.key"),
              "--host", "node.example", "--host", "10.0.0.7")
    assert r.rc == 0, r.err
    assert (d / "ca.crt").read_bytes() == (tmp_path / "ca.crt").read_bytes()
    cert = x509.load_pem_x509_certificate((d / "tls.crt").read_bytes())
    assert cert.issuer == ca_cert.subject
    cert.verify_directly_issued_by(ca_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == ["node.example", "10.0.0.7"]


def test_init_dev_copies_dev_keys(tmp_path: Path, bx: Bx) -> None:
    d = tmp_path / "n"
    r = _init(bx, d, "--dev", "--dev-keys", str(DEV / "kaz"))
    assert r.rc == 0, r.err
    assert (d / "signing.key").read_bytes() == (DEV / "kaz" / "signing.key").read_bytes()
    assert (d / "ca.crt").read_bytes() == (DEV / "ca.crt").read_bytes()
    assert _mode(d / "signing.key") == _mode(d / "tls.key") == 0o600
    assert load_config(d).dev_mode is True


def test_init_dev_keys_folder_missing_a_file(tmp_path: Path, bx: Bx) -> None:
    src = tmp_path / "keys" / "x"
    src.mkdir(parents=True)
    (src / "signing.key").write_text("00" * 32)
    d = tmp_path / "n"
    r = _init(bx, d, "--dev", "--dev-keys", str(src))
    assert assert_one_sentence(r) == f"bxnode: {src} has no x/tls.key"
    assert not d.exists()


def test_init_rolls_back_when_it_fails_half_way(tmp_path: Path, bx: Bx) -> None:
    """A dev signing key that is not hex is found after copying began: everything is removed."""
    src = tmp_path / "keys" / "x"
    src.mkdir(parents=True)
    for name in ("tls.key", "tls.crt"):
        (src / name).write_bytes((DEV / "kaz" / name).read_bytes())
    (src / "signing.key").write_text("this is not hex\n")
    (tmp_path / "keys" / "ca.crt").write_bytes((DEV / "ca.crt").read_bytes())
    d = tmp_path / "n"
    r = _init(bx, d, "--dev", "--dev-keys", str(src))
    assert assert_one_sentence(r) == (
        f"bxnode: {src / 'signing.key'} does not hold a 32-byte hex seed")
    assert list(d.iterdir()) == []
    # and the folder can be initialised properly afterwards
    assert _init(bx, d).rc == 0
