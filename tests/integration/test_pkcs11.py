"""The node's Ed25519 key in a PKCS#11 token: a real SoftHSM2 token made for these tests.

(a) a key file imported into the token signs byte for byte as the file did (Ed25519 is
    deterministic), at every site: envelopes, checkpoints, cosignatures, registry votes;
(b) a key generated in the token never leaves it, and its signatures verify;
(c) every mistake an operator can make (wrong PIN, missing token, missing object, a key
    that is not Ed25519, a loose PIN file, no PIN, no module, an object name taken) is one
    sentence from ``bxnode keys`` and exit 1, with its reason code;
(d) a real ``bxnode serve`` signing with the token key answers a real peer over mTLS, the
    peer verifies the answer, and its audit log's checkpoints verify;
(e) rotation into a new token object, as with key files: generate, list it in a new
    registry version, switch ``[keys] signing_key``, restart; the peer verifies the new key.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from node.audit.checkpoint import CosignatureV1Signer
from node.audit.note import Ed25519NoteSigner
from node.core import envelope as env_mod
from node.core.errors import ConfigError
from node.core.model import DocumentQuery, QueryKind
from node.core.signer import SeedSigner, signer_key_id
from node.federation.devkeys import dev_registry
from node.federation.registry import sign_registry
from node.keys import Pkcs11Key
from node.keys.pkcs11 import Pkcs11Signer, generate_key, import_seed
from node.keys.uri import parse_pkcs11_uri
from node.store.keys import write_private
from tests.federation import CTX, DEV, ROOT, Federation, make_federation
from tests.softhsm import PIN, PIN_ENV, TOKEN, SoftHsm, SoftHsmUnavailable
from tests.waiting import until_file

pytestmark = pytest.mark.integration

DOC = DocumentQuery(number="N1234567", issuing_state="KAZ")


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    try:
        h = SoftHsm.create(tmp_path_factory.mktemp("softhsm"))
    except SoftHsmUnavailable as exc:
        pytest.skip(f"PKCS#11 tests need SoftHSM2: {exc}")
    import pkcs11
    from pkcs11 import Attribute, KeyType
    from pkcs11.util.ec import encode_named_curve_parameters

    # a key that is not Ed25519, for (c): ECDSA P-256, as a TLS key would be
    token = pkcs11.lib(str(h.module)).get_token(token_label=TOKEN)
    with token.open(rw=True, user_pin=PIN) as s:
        s.generate_keypair(KeyType.EC, store=True, label="p256",
                           public_template={Attribute.EC_PARAMS:
                                            encode_named_curve_parameters("secp256r1")})
    yield h
    os.environ.pop("SOFTHSM2_CONF", None)


def _key(hsm: SoftHsm, obj: str) -> Pkcs11Key:
    os.environ[PIN_ENV] = PIN
    return Pkcs11Key(uri=parse_pkcs11_uri(f"pkcs11:token={TOKEN};object={obj}"),
                     module=hsm.module, pin_env=PIN_ENV)


# --- (a), (b) ----------------------------------------------------------------------------


def test_an_imported_key_signs_exactly_as_the_file_key_at_every_site(hsm: SoftHsm) -> None:
    file_key = SeedSigner.generate()
    public = import_seed(_key(hsm, "imported"), file_key.seed)
    assert public == file_key.public_key
    token_key = Pkcs11Signer.open(_key(hsm, "imported"))
    assert (token_key.public_key, signer_key_id(token_key)) == (file_key.public_key,
                                                                signer_key_id(file_key))
    # envelopes (requests, answers, refusals): DSSE PAE, verified by the envelope verifier
    envs = [env_mod.sign(payload_type=env_mod.RESPONSE_TYPE, payload=b"answer", signer="KAZ-BS",
                         key=k) for k in (token_key, file_key)]
    assert envs[0] == envs[1]
    env_mod.verify(envs[0], file_key.public_key, expected_type=env_mod.RESPONSE_TYPE)
    # checkpoints (signed notes) and witness cosignatures
    text = b"bxnode/KAZ-BS\n1\nAAAA\n"
    notes = [Ed25519NoteSigner(name="bxnode/KAZ-BS", signer=k) for k in (token_key, file_key)]
    assert notes[0].sign(text) == notes[1].sign(text)
    assert notes[1].verifier.verify(text, notes[0].sign(text))
    cos = CosignatureV1Signer(name="bxnode-witness/KAZ-BS", signer=token_key)
    assert cos.verifier.public_key == file_key.public_key
    # registry votes
    members = json.loads((DEV / "members.json").read_text())["members"]
    reg = dev_registry(members, now_ms=int(time.time() * 1000))
    assert sign_registry(reg, token_key).signatures == sign_registry(reg, file_key).signatures


def test_a_generated_key_never_leaves_the_token(hsm: SoftHsm) -> None:
    import pkcs11
    import pkcs11.exceptions
    from pkcs11 import Attribute, ObjectClass

    public = generate_key(_key(hsm, "generated"))
    signer = Pkcs11Signer.open(_key(hsm, "generated"))
    assert signer.public_key == public
    sig = signer.sign(b"m")
    nacl.signing.VerifyKey(public).verify(b"m", sig)
    with pkcs11.lib(str(hsm.module)).get_token(token_label=TOKEN).open() as s:
        # login is per process: the signer's session logged in, this one shares it
        priv = next(iter(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                        Attribute.LABEL: "generated"})))
        assert (priv[Attribute.SENSITIVE], priv[Attribute.EXTRACTABLE]) == (True, False)
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            priv[Attribute.VALUE]
    with pytest.raises(ConfigError) as err:
        generate_key(_key(hsm, "generated"))
    assert err.value.reason == "pkcs11_object_exists"


# --- (c) ---------------------------------------------------------------------------------


def _node_toml(d: Path, keys: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "node.toml").write_text(f'[node]\nid = "KAZ-BS"\ncountry = "KAZ"\n\n{keys}',
                                 encoding="utf-8")
    return d


def _bx(hsm: SoftHsm, *argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "node.cli.main", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env if env is not None else hsm.env())


def _finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.startswith("bxnode: ")]
    return p.returncode, out, lines[0] if len(lines) == 1 else err


def test_every_token_mistake_is_one_sentence_and_exit_1(hsm: SoftHsm, tmp_path: Path) -> None:
    generate_key(_key(hsm, "good"))
    good = hsm.keys_section("good")
    loose = tmp_path / "loose.pin"
    loose.write_text(PIN + "\n")
    loose.chmod(0o644)
    empty = tmp_path / "empty.pin"
    write_private(empty, "\n")
    uri = f"pkcs11:token={TOKEN};object="
    cases = {
        "wrong PIN": (good, {PIN_ENV: "999999"}, "pkcs11_wrong_pin",
                      f"bxnode: the PIN for the PKCS#11 token of {uri}good is wrong"),
        "no PIN": (good, {PIN_ENV: ""}, "pkcs11_no_pin",
                   f"bxnode: no PIN for the PKCS#11 token: ${PIN_ENV} is not set "
                   "([keys] pkcs11_pin_env)"),
        "loose PIN file": (hsm.keys_section("good", pin_file=loose), {}, "insecure_file_mode",
                           f"bxnode: PKCS#11 PIN file {loose} is readable by others; run "
                           f"'chmod 600 {loose}'"),
        "empty PIN file": (hsm.keys_section("good", pin_file=empty), {}, "pkcs11_no_pin",
                           f"bxnode: PKCS#11 PIN file {empty} is empty"),
        "missing token": (good.replace(f"token={TOKEN}", "token=unplugged"), {},
                          "pkcs11_token_not_found",
                          "bxnode: no PKCS#11 token matches pkcs11:token=unplugged;object=good "
                          "(is it plugged in and initialised?)"),
        "missing object": (hsm.keys_section("nosuchkey"), {}, "pkcs11_object_not_found",
                           f"bxnode: the PKCS#11 token holds no private key matching "
                           f"{uri}nosuchkey"),
        "not Ed25519": (hsm.keys_section("p256"), {}, "pkcs11_not_ed25519",
                        f"bxnode: the PKCS#11 key of {uri}p256 is an EC key, not Ed25519"),
        "no module": (good.replace(str(hsm.module), "/nonexistent/libtoken.so"), {},
                      "pkcs11_module_unavailable",
                      "bxnode: PKCS#11 module /nonexistent/libtoken.so does not exist "
                      "([keys] pkcs11_module)"),
    }
    running = {}
    for name, (keys, env, _, _) in cases.items():
        d = _node_toml(tmp_path / re.sub(r"\W", "-", name), keys)
        running[name] = _bx(hsm, "keys", "show", "--json", "--node-dir", str(d),
                            env={**hsm.env(), **env})
    ok = _bx(hsm, "keys", "show", "--json", "--node-dir", str(_node_toml(tmp_path / "ok", good)))
    for name, p in running.items():
        rc, out, line = _finish(p)
        _, _, reason, message = cases[name]
        assert (rc, line) == (1, message), name
        assert json.loads(out)["error"]["reason"] == reason, name
    rc, out, err = _finish(ok)
    assert rc == 0, err
    shown = json.loads(out)
    assert (shown["kind"], shown["key"]) == ("pkcs11", f"{uri}good")
    assert shown["key_id"] == env_mod.key_id_for(base64.b64decode(shown["public_key"]))


# --- (d), (e) ----------------------------------------------------------------------------


def _use_token(hsm: SoftHsm, node_dir: Path, obj: str) -> None:
    """Point the node's [keys] at the token object ``obj``, the PIN in a 0600 file."""
    pin_file = node_dir / "token.pin"
    if not pin_file.exists():
        write_private(pin_file, PIN + "\n")
    text = (node_dir / "node.toml").read_text()
    text, n = re.subn(r"\[keys\]\n(?:[^\[\n][^\n]*\n)+",
                      hsm.keys_section(obj, pin_file=pin_file) + "\n", text)
    assert n == 1
    (node_dir / "node.toml").write_text(text)


class Served:
    """``bxnode serve`` in its own process (the token's environment given), until stop."""

    def __init__(self, hsm: SoftHsm, node_dir: Path) -> None:
        (node_dir / "serve.port").unlink(missing_ok=True)
        self.proc = _bx(hsm, "serve", "--node-dir", str(node_dir))
        until_file(node_dir / "serve.port", self.proc, timeout=60, on_fail=self._failed)

    def _failed(self) -> str:
        self.proc.kill()
        return "node did not start: " + self.proc.communicate()[1][-2000:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=30)


def _move_into_token(hsm: SoftHsm, fed: Federation, node: str, obj: str) -> str:
    """Import the node's key file into ``obj``, switch the node to it, delete the file."""
    d = fed.dirs[node]
    p = _bx(hsm, "keys", "import", str(d / "signing.key"), f"pkcs11:token={TOKEN};object={obj}",
            "--pkcs11-module", str(hsm.module), "--pin-env", PIN_ENV, "--json")
    rc, out, err = _finish(p)
    assert rc == 0, err
    (d / "signing.key").unlink()
    _use_token(hsm, d, obj)
    return str(json.loads(out)["key_id"])


def test_bxnode_serve_signs_with_the_token_and_the_peer_verifies(hsm: SoftHsm,
                                                                tmp_path: Path) -> None:
    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"))
    kaz_kid = _move_into_token(hsm, fed, "KAZ-BS", "kaz-serve")
    served = Served(hsm, fed.dirs["KAZ-BS"])
    fed.start("KGZ-BS")
    try:
        client = fed.client("KGZ-BS")
        try:
            outcome = client.lookup_outcome("KAZ-BS", CTX, QueryKind.DOCUMENT, [DOC])
        finally:
            client.close()
        assert outcome.answer.key_id == outcome.exchange.response.key_id == kaz_kid  # verified
        assert len(outcome.answer.results) == 1
        # KAZ-BS asks KGZ-BS: its request is signed in the token, KGZ-BS verifies it
        p = _bx(hsm, "query", "doc", "--node-dir", str(fed.dirs["KAZ-BS"]), "--peer", "KGZ-BS",
                "--number", "N1234567", "--state", "KAZ", "--purpose", "border_check",
                "--case-ref", "CASE-1", "--json")
        rc, _, err = _finish(p)
        assert rc == 0, err
        assert [e["requester"] for e in fed.audit("KGZ-BS")
                if e.get("event") == "lookup" and e.get("verified")] == ["KAZ-BS"]
    finally:
        served.stop()
        fed.stop_all()
    # the checkpoints the token signed verify
    rc, _, err = _finish(_bx(hsm, "audit", "verify", "--node-dir", str(fed.dirs["KAZ-BS"])))
    assert rc == 0, err


def test_rotation_into_a_new_token_object(hsm: SoftHsm, tmp_path: Path) -> None:
    from tests.integration.test_registry import govern, refresh

    fed = make_federation(tmp_path, node_ids=("KAZ-BS", "KGZ-BS"), registry=True)
    old_kid = _move_into_token(hsm, fed, "KAZ-BS", "kaz-2026")
    for n in fed.dirs:
        fed.start(n)
    try:
        p = _bx(hsm, "keys", "generate", f"pkcs11:token={TOKEN};object=kaz-2027", "--json",
                "--node-dir", str(fed.dirs["KAZ-BS"]))
        rc, out, err = _finish(p)
        assert rc == 0, err
        new = json.loads(out)
        assert new["key_id"] != old_kid
        govern(fed, "--rotate-key", "KAZ-BS", "--new-key", new["public_key"],
               "--old-key-until", "2099-01-01T00:00:00Z")
        refresh(fed, "KAZ-BS", "KGZ-BS")
        _use_token(hsm, fed.dirs["KAZ-BS"], "kaz-2027")
        fed.restart("KAZ-BS")
        client = fed.client("KGZ-BS")
        try:
            outcome = client.lookup_outcome("KAZ-BS", CTX, QueryKind.DOCUMENT, [DOC])
        finally:
            client.close()
        assert outcome.exchange.response.key_id == new["key_id"]  # the new object signed
        assert fed.nodes["KAZ-BS"].runtime.responder.key_id == new["key_id"]
    finally:
        fed.stop_all()
