"""``make demo``: a local federation of three nodes, end to end, on the embedded defaults.

Kazakhstan (KAZ-BS), Kyrgyzstan (KGZ-BS) and Uzbekistan (UZB-BS) each get a
node directory initialised with ``bxnode init --dev`` from keys/dev, import
their sample watchlists with ``bxnode watchlist import``, and run as real
``bxnode serve`` processes over mTLS on 127.0.0.1.  The queries go through
the same client the ``bxnode query`` commands use.  Then each node's audit
log is verified with ``bxnode audit verify`` and the nodes are stopped with
SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "keys" / "dev"
DATA = ROOT / "deployments" / "demo"

NODES = {
    "KAZ-BS": ("kaz", "kaz-watchlist.csv"),
    "KGZ-BS": ("kgz", "kgz-watchlist.jsonl"),
    "UZB-BS": ("uzb", "uzb-watchlist.csv"),
}


def say(text: str = "") -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bxnode(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "node.cli.main", *args],
                          capture_output=True, text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: 'bxnode {' '.join(args)}' failed: {proc.stderr.strip()}")
    return proc


@dataclass
class Tally:
    queries: int = 0
    hits: int = 0
    no_hits: int = 0
    denied: int = 0
    notes: list[str] = field(default_factory=list)


def wait_serving(node_dir: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (node_dir / "serve.port").exists():
            return
        if proc.poll() is not None:
            raise SystemExit(f"demo: a node failed to start (exit {proc.returncode})")
        time.sleep(0.05)
    raise SystemExit("demo: a node did not start in time")


def _officer_access(work: Path, node_dir: Path) -> tuple[Path, Path]:
    """KGZ-BS's LocalService for its officers: an agency CA, one duty officer's certificate,
    the role table (issue 11).  Returns the officer's certificate and key."""
    from cryptography.hazmat.primitives import serialization

    from node.federation import pki

    ca = pki.new_ca("KGZ-BS officers CA (demo)", "KGZ-BS")
    key = pki.new_tls_key()
    cert = pki.issue_cert(cn="kgz-duty-07", org="Border Service", key=key,
                          hosts=["kgz-duty-07"], ca=ca)
    folder = work / "officers-kgz"
    folder.mkdir()
    (folder / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    (folder / "kgz-duty-07.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "kgz-duty-07.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    from cryptography.hazmat.primitives.serialization import pkcs12

    # the same certificate for a browser (the operator console, issue 15): no password, demo only
    (folder / "kgz-duty-07.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"kgz-duty-07", key, cert, None, serialization.NoEncryption()))
    with (node_dir / "node.toml").open("a") as f:
        f.write(f'\n[local]\napi_socket = "unix:officers.sock"\n'
                f'client_ca = "{folder / "ca.crt"}"\n'
                f'\n[console]\nenabled = true\nlisten = "127.0.0.1:{free_port()}"\n'
                'default_language = "ru"\ntimezone = "Asia/Bishkek"\n'
                '\n[local.roles]\n"kgz-duty-07" = ["duty_officer"]\n')
    return folder / "kgz-duty-07.crt", folder / "kgz-duty-07.key"


def _console_address(node_dir: Path) -> str:
    from node.config import load_config

    return f"https://{load_config(node_dir).console.listen}/"


def _fan_out(node_dir: Path, officer: tuple[Path, Path], tally: Tally) -> None:
    """A duty officer at a Kyrgyz post asks every neighbour at once through the node's
    LocalService: one answer per peer, each verified, never merged."""
    from node.local.client import LocalClient

    say("-- A Kyrgyz duty officer (certificate kgz-duty-07) checks one passport with every "
        "neighbour at once, through KGZ-BS's LocalService")
    with LocalClient.over_socket(node_dir / "officers.sock", cert=officer[0], key=officer[1],
                                 ca=node_dir / "ca.crt") as local:
        out = local.lookup_document("N0481516", "KAZ", peers=["all"], purpose="border_check",
                                    case_ref="DEMO-FANOUT-1")
    tally.queries += 1
    for p in out.peers:
        if p.outcome == "answered":
            tally.hits += p.hits
            tally.no_hits += len(p.results) - p.hits
            what = (f"HIT reference {p.results[0].reference or '(withheld)'}" if p.hits
                    else "no hit")
            say(f"   {p.peer}: {what} (signed answer verified; its audit entry "
                f"{p.peer_audit_seq} names officer kgz-duty-07)")
        else:
            say(f"   {p.peer}: {p.outcome} {p.status.lower()}/{p.reason}".rstrip("/"))
    say(f"   KGZ-BS logged the officer's call as audit entry {out.audit_seq}")


def main() -> int:
    from node.app import now_ms, open_store
    from node.client.peer import PeerClient, QueryContext
    from node.config import load_config
    from node.core.errors import RemoteError
    from node.core.model import DocumentQuery, PartialDate, PersonQuery, QueryKind, Sex
    from node.federation.devkeys import dev_registry
    from node.federation.directory import load_directory
    from node.federation.pki import TlsMaterial
    from node.keys import load_signer
    from node.logging import configure
    from node.watchlist.manifest import read_manifest

    configure()

    work = Path(tempfile.mkdtemp(prefix="bxnode-demo-"))
    procs: list[subprocess.Popen[bytes]] = []
    tally = Tally()
    try:
        say("== border-exchange-node demo: a federation of three border services ==")
        ports = {n: free_port() for n in NODES}
        members = json.loads((DEV / "members.json").read_text())
        members["members"] = [m for m in members["members"] if m["node_id"] in NODES]
        for m in members["members"]:
            m["endpoint"] = f"127.0.0.1:{ports[m['node_id']]}"
        (work / "members.json").write_text(json.dumps(members, indent=2))
        dirs: dict[str, Path] = {}
        for node_id, (folder, watchlist) in NODES.items():
            d = work / folder
            dirs[node_id] = d
            country = node_id[:3]
            bxnode("init", "--node-dir", str(d), "--node-id", node_id, "--country", country,
                   "--dev", "--dev-keys", str(DEV / folder), "--listen",
                   f"127.0.0.1:{ports[node_id]}", "--members", str(work / "members.json"),
                   "--policy-dir", str(ROOT / "policies"), "--operator", f"{folder}-officer-01",
                   "--contact", f"{node_id} duty desk")
            out = bxnode("watchlist", "import", str(DATA / watchlist), "--node-dir", str(d))
            say(f"{node_id}: node initialised (development keys), {out.stdout.strip()}")
        # The signed federation registry (issue 5): version 1 lists the three nodes and is
        # signed by 3 of the 5 member states' development governance keys; each node installs
        # it as its trust anchor and uses it instead of members.json.
        registry = dev_registry(members["members"], now_ms=now_ms())
        (work / "registry.json").write_bytes(registry.to_bytes())
        for d in dirs.values():
            bxnode("registry", "publish", str(work / "registry.json"), "--node-dir", str(d))
        say(f"federation registry version {registry.version} signed by "
            f"{len(registry.signatures)} of {len(registry.states)} member states' governance "
            f"keys (threshold {registry.threshold}), installed on every node")
        for d in dirs.values():  # witness each other every second (default: every minute)
            toml = d / "node.toml"
            toml.write_text(toml.read_text().replace("witness_interval_s = 60",
                                                     "witness_interval_s = 1"))
        officer = _officer_access(work, dirs["KGZ-BS"])  # issue 11: the LocalService
        for d in dirs.values():
            env = dict(os.environ)
            log = (d / "serve.log").open("wb")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "node.cli.main", "serve", "--node-dir", str(d)],
                stdout=log, stderr=log, cwd=ROOT, env=env))
        for d, proc in zip(dirs.values(), procs, strict=True):
            wait_serving(d, proc)
        say(f"all three nodes serving over mutual TLS on 127.0.0.1 "
            f"(ports {', '.join(str(p) for p in ports.values())})")
        say(f"KGZ-BS operator console: {_console_address(dirs['KGZ-BS'])} (sign in with "
            f"{officer[0].with_suffix('.p12')}, no password)")
        say()

        def client_for(node_id: str) -> tuple[PeerClient, Any]:
            cfg = load_config(dirs[node_id])
            store = open_store(cfg)
            return PeerClient(
                node_id=node_id, signing_key=load_signer(cfg.signing_key),
                directory=load_directory(cfg, store=store, clock_ms=now_ms),
                tls=TlsMaterial.from_files(cert=cfg.tls_cert, key=cfg.tls_key, ca=cfg.tls_ca),
                store=store, clock_ms=now_ms), store

        def ask(asker: str, peer: str, title: str, kind: QueryKind, items: list[Any],
                purpose: str = "border_check") -> None:
            client, store = client_for(asker)
            tally.queries += 1
            say(f"-- {title}")
            say(f"   {asker} asks {peer} ({len(items)} item(s), purpose {purpose})")
            try:
                ans = client.lookup(peer, QueryContext(
                    operator=f"{asker[:3].lower()}-officer-01", purpose=purpose,
                    legal_basis="Bilateral border cooperation agreement, art. 7",
                    case_ref=f"DEMO-{tally.queries:03d}"), kind, items)
            except RemoteError as exc:
                tally.denied += 1
                say(f"   REFUSED by {peer}: {exc.status} / {exc.reason}"
                    f"{' (signed refusal verified)' if exc.refusal_verified else ''}")
                return
            finally:
                client.close()
                store.close()
            for r in ans.results:
                if r.outcome.value == "hit":
                    tally.hits += 1
                    say(f"   item {r.index}: HIT  reference {r.reference or '(withheld)'}, "
                        f"action {r.action.value if r.action else '(withheld)'}"
                        f"{', contact ' + r.contact if r.contact else ''}")
                else:
                    tally.no_hits += 1
            n_no = sum(1 for r in ans.results if r.outcome.value != "hit")
            if n_no:
                say(f"   {n_no} item(s): no hit")
            say(f"   answer signed by {ans.responder}, bound to our request, verified; "
                f"receipt kept; {peer} logged it as audit entry {ans.audit_seq}")

        ask("KGZ-BS", "KAZ-BS", "Kyrgyz border guard at Ak-Zhol checks a Kazakh passport",
            QueryKind.DOCUMENT, [DocumentQuery(number="N0481516", issuing_state="KAZ")])
        ask("KGZ-BS", "KAZ-BS", "...and the next traveller's passport",
            QueryKind.DOCUMENT, [DocumentQuery(number="N5550001", issuing_state="KAZ")])
        ask("KGZ-BS", "KAZ-BS", "A Kazakh passport whose alert expired in 2024 no longer hits",
            QueryKind.DOCUMENT, [DocumentQuery(number="N7700770", issuing_state="KAZ")])
        ask("UZB-BS", "KGZ-BS", "Uzbek border service checks a person (name in Cyrillic)",
            QueryKind.PERSON, [PersonQuery(family_name="Асанов", given_names="Бакыт",
                                           patronymic="Токтогулович",
                                           date_of_birth=PartialDate(1979, 11, 2),
                                           nationality="KGZ", sex=Sex.MALE)])
        ask("KGZ-BS", "KAZ-BS", "Kyrgyz officer reads an Uzbek passport's MRZ (IUSUPOV TIMUR); "
            "Kazakhstan's alert is written in Cyrillic (Юсупов Тимур)",
            QueryKind.PERSON, [PersonQuery(family_name="IUSUPOV", given_names="TIMUR",
                                           date_of_birth=PartialDate(1984, 3, 17),
                                           nationality="UZB", sex=Sex.MALE)])
        manifest = read_manifest(DATA / "flight-KC127-manifest.csv")
        ask("KAZ-BS", "UZB-BS", "Kazakhstan checks flight KC127's passenger manifest in one "
            "signed batch", QueryKind.BATCH, manifest)
        # Issue 11: the airline's own PAXLST message, checked traveller by traveller.
        say("-- Kyrgyzstan checks flight KC109 Almaty-Bishkek from the airline's PAXLST "
            "message with every neighbour (bxnode under officer kgz-duty-07's certificate, "
            "through KGZ-BS's LocalService): a wanted man travels on a new passport")
        text = bxnode("query", "paxlst", str(DATA / "flight-KC109-paxlst.edi"), "--peers",
                      "all", "--purpose", "border_check", "--case-ref", "DEMO-PAXLST-1",
                      "--officer-cert", str(officer[0]), "--officer-key", str(officer[1]),
                      "--node-dir", str(dirs["KGZ-BS"])).stdout
        tally.queries += 1
        tally.hits += text.count(": HIT ")
        tally.no_hits += text.count(": no hit")
        for line in text.splitlines():
            say(f"   {line.strip()}")
        ask("UZB-BS", "KAZ-BS", "Uzbekistan asks Kazakhstan for a criminal investigation, "
            "a purpose their agreement does not cover", QueryKind.DOCUMENT,
            [DocumentQuery(number="N1122334", issuing_state="KAZ")],
            purpose="criminal_investigation")
        _fan_out(dirs["KGZ-BS"], officer, tally)
        say()

        from node.crossings.demo import run_crossings_demo  # issue 3: crossings, follow-ups

        x = run_crossings_demo(dirs=dirs, data=DATA, work=work, bxnode=bxnode, say=say)
        say(f"crossings: {x['confirmations']} signed confirmation request(s), "
            f"{x['mismatches']} mismatch(es) found, {x['followups']} follow-up approved")
        say()

        say("== proving what was logged (RFC 9162 proofs, signed checkpoints, witnesses) ==")
        from node.audit.receipts import fetch_inclusion_proof
        from node.store.exchange import SqlReceiptStore

        client, store = client_for("KGZ-BS")
        try:
            first = next(r for r in SqlReceiptStore(store).all(direction="sent")
                         if r.peer == "KAZ-BS")
            proof = fetch_inclusion_proof(
                client, "KAZ-BS", QueryContext(operator="kgz-officer-01",
                                               purpose="border_check",
                                               legal_basis="receipt proof", case_ref="DEMO-001"),
                first.request_digest, store=store, now_ms=now_ms(),
                directory=load_directory(load_config(dirs["KGZ-BS"]), store=store,
                                         clock_ms=now_ms))
        finally:
            client.close()
            store.close()
        say(f"KGZ-BS asks KAZ-BS to prove it logged KGZ-BS's first question: entry "
            f"{proof.seq} is included in KAZ-BS's signed checkpoint of {proof.tree_size} "
            "entries; proof verified and kept with the receipt")
        bundle = work / "kaz-audit-proof.json"
        bxnode("audit", "prove", "--seq", str(proof.seq), "--out", str(bundle),
               "--node-dir", str(dirs["KAZ-BS"]))
        out = bxnode("audit", "verify-bundle", str(bundle), "--members",
                     str(work / "members.json"), "--json")
        offline = json.loads(out.stdout)
        say(f"an inspector verifies that entry offline from a proof bundle and the members "
            f"file alone: {'verified' if offline.get('ok') else 'NOT verified'}")
        time.sleep(2.5)  # let the nodes' witnessing rounds (every second here) run
        for node_id, d in dirs.items():
            st = json.loads(bxnode("audit", "status", "--node-dir", str(d), "--json",
                                   check=False).stdout or "{}")
            say(f"{node_id}: checkpoint cosigned by {', '.join(st.get('cosigned_by') or []) or '-'}"
                f"; {'no' if not st.get('witness_alert') else 'AN'} inconsistent checkpoint "
                "seen")
        say()

        say("== auditors verify every node's audit log ==")
        for node_id, d in dirs.items():
            out = bxnode("audit", "verify", "--node-dir", str(d), "--json", check=False)
            if out.returncode != 0:
                raise SystemExit(f"demo: audit log of {node_id} did not verify: "
                                 f"{out.stderr.strip()}")
            rep = json.loads(out.stdout)
            say(f"{node_id}: {rep['entries']} audit entries, Merkle tree and "
                f"{rep['checkpoints']} signed checkpoints verified "
                f"(head {rep['head'][:16]}...)")
        say()
        if os.environ.get("BXNODE_DEMO_KEEP"):
            say(f"BXNODE_DEMO_KEEP: the federation keeps running; the KGZ-BS operator console "
                f"is at {_console_address(dirs['KGZ-BS'])} (certificate "
                f"{officer[0].with_suffix('.p12')}). Ctrl-C stops it.")
            with contextlib.suppress(KeyboardInterrupt):
                while all(proc.poll() is None for proc in procs):
                    time.sleep(1)
        say("== shutting down (SIGTERM) ==")
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            code = proc.wait(timeout=20)
            if code != 0:
                raise SystemExit(f"demo: a node exited with status {code} on SIGTERM")
        procs.clear()
        say(f"demo: {tally.queries} queries, {tally.hits} hits, {tally.no_hits} no-hits, "
            f"{tally.denied} denied, audit verified")
        return 0
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        if os.environ.get("BXNODE_DEMO_KEEP"):
            print(f"(kept {work})", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
