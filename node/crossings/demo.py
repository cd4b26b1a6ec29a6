"""The demo's part for issue 3: crossing confirmation, reconciliation, a follow-up.

Called by ``node/demo.py`` after its lookups (the nodes are serving; the first lookup
gave Kyrgyzstan a HIT on a stolen Kazakh passport, reference KAZ-SLTD-2026-000117).
Everything goes through the ``bxnode`` command line, as an operator would type it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_crossings_demo"]

CROSSINGS = {"KAZ-BS": "kaz-crossings.csv", "KGZ-BS": "kgz-crossings.csv",
             "UZB-BS": "uzb-crossings.jsonl"}


def run_crossings_demo(*, dirs: dict[str, Path], data: Path, work: Path,
                       bxnode: Callable[..., subprocess.CompletedProcess[str]],
                       say: Callable[[str], None]) -> dict[str, Any]:
    """Run the crossings and follow-up part; returns its tally for the demo's summary."""

    def run(node: str, *args: str) -> Any:
        out = bxnode(*args, "--node-dir", str(dirs[node]), "--json")
        return json.loads(out.stdout)

    say("== border crossings: records, confirmations, reconciliation ==")
    for node, name in CROSSINGS.items():
        b = run(node, "crossings", "bcps", str(data / "bcps.json"))
        c = run(node, "crossings", "import", str(data / name))
        faces = ", ".join(f"{f['own']}->{f['faces']}" for f in b["facing"])
        say(f"{node}: {c['imported']} crossing record(s) imported; facing BCPs {faces}")
    say("")
    say("-- Kyrgyz officer at Ak-Zhol: did passport AC1111111 leave Kazakhstan at Kordai "
        "this morning?")
    ans = run("KGZ-BS", "crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
              "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit",
              "--from", "2026-11-20T06:00:00Z", "--to", "2026-11-20T10:00:00Z",
              "--purpose", "border_check", "--case-ref", "AKZHOL-2026-1120-017")
    say(f"   KAZ-BS answers {ans['outcome'].upper()} at {ans['bcp']}, {ans['crossed_at']} "
        f"(time rounded to {ans['resolution_minutes']} min by policy); signed, bound, verified")
    say("-- the same question about Kordai from Uzbekistan (Kordai does not face Uzbekistan)")
    denied = bxnode("crossings", "confirm", "--peer", "KAZ-BS", "--doc-number", "AC1111111",
                    "--doc-state", "KGZ", "--bcp", "KAZ-KORDAI", "--direction", "exit",
                    "--from", "2026-11-20T06:00:00Z", "--to", "2026-11-20T10:00:00Z",
                    "--purpose", "border_check", "--case-ref", "GK-2026-1120-003",
                    "--node-dir", str(dirs["UZB-BS"]), check=False)
    say(f"   {denied.stderr.strip().splitlines()[-1].removeprefix('bxnode: ')}")
    say("")
    say("-- Kazakhstan reconciles 20 November with Kyrgyzstan (signed batches of 2)")
    detail = work / "reconcile-KAZ-KGZ-2026-11-20.csv"
    rep = run("KAZ-BS", "crossings", "reconcile", "--peer", "KGZ", "--from",
              "2026-11-20T00:00:00Z", "--to", "2026-11-20T23:59:59Z", "--batch-size", "2",
              "--out", str(detail))
    ex, en = rep["exit_without_entry"], rep["entry_without_exit"]
    say(f"   {rep['checked']} crossings in {rep['batches']} batches: {rep['matched']} matched, "
        f"{ex} exit{'' if ex == 1 else 's'} without an entry, "
        f"{en} entr{'y' if en == 1 else 'ies'} without an exit")
    for line in detail.read_text(encoding="utf-8").splitlines()[1:]:
        f = line.split(",")
        if f[0] != "matched":
            say(f"   {f[0]}: {f[1]} {f[2]} at {f[3]} {f[4]} (document {f[5]} {f[6]})")
    say("")

    say("== the second step: a follow-up after the HIT on KAZ-SLTD-2026-000117 ==")
    filed = run("KGZ-BS", "followup", "file", "--peer", "KAZ-BS", "--reference",
                "KAZ-SLTD-2026-000117", "--fields", "document_number,issuing_state,loss_type",
                "--purpose", "border_check", "--legal-basis",
                "Bilateral border cooperation agreement, art. 9",
                "--case-ref", "AKZHOL-2026-1120-017")
    fid = filed["id"]
    say(f"   KGZ-BS files follow-up {fid}: {filed['state']}, due {filed['deadline']}")
    pending = run("KAZ-BS", "followup", "list", "--state", "pending")["followups"]
    say(f"   KAZ-BS duty desk: {len(pending)} pending follow-up(s); {fid} asks for "
        f"{', '.join(next(p for p in pending if p['id'] == fid)['requested'])}")
    ok = run("KAZ-BS", "followup", "approve", fid, "--fields", "document_number,loss_type",
             "--operator", "kz-sirene-04")
    say(f"   operator kz-sirene-04 approves, narrowed to {', '.join(ok['released'])}")
    got = run("KGZ-BS", "followup", "status", fid, "--peer", "KAZ-BS")
    fields = ", ".join(f"{k}={v}" for k, v in sorted(got["fields"].items()))
    say(f"   KGZ-BS polls: {got['state'].upper()}: {fields}; decision signed by KAZ-BS, "
        "bound to the follow-up request, verified")
    say("")
    return {"confirmations": 1 + rep["batches"], "mismatches": rep["exit_without_entry"]
            + rep["entry_without_exit"], "followups": 1}
