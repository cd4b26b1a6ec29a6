"""The benchmark suite runs end to end (``make bench-smoke``); no timing is asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# The smoke run starts echo, node and load-generator processes for every scenario: about
# 60-90 s alone on two cores, longer on a busy machine; the suite's 120 s default is too tight.
@pytest.mark.timeout(360)
def test_benchmark_smoke_run_produces_every_figure(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--smoke", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    for key in ("baseline_echo", "doc_lookup_saturation", "doc_lookup_at_250_rps",
                "doc_lookup_at_1000_rps", "doc_lookup_at_2000_rps", "batch100_saturation",
                "person_lookup_saturation", "doc_lookup_large_at_250_rps",
                "doc_lookup_large_at_1000_rps"):
        r = results[key]
        assert r["ok"] > 0, key
        assert {"p50_ms", "p95_ms", "p99_ms", "throughput_rps"} <= set(r), key
    # every request the node answered was a verified, signed exchange: none was refused
    for key in ("doc_lookup_saturation", "batch100_saturation", "person_lookup_saturation"):
        assert results[key]["errors"] == 0, (key, results[key]["codes"])
    assert results["doc_lookup_saturation"]["ratio_to_baseline"] > 0
    assert results["import_small"]["rows"] == 2500
    assert results["names_heldout"]["pairs"] >= 1000
    assert 0 < results["names_heldout"]["f1"] <= 1
    assert results["person_index"]["persons"] == 20_000
    assert results["audit"]["max_inclusion_proof_hashes_10M"] == 24
    table = (tmp_path / "smoke.md").read_text()
    assert "bare gRPC echo (baseline, mTLS)" in table and "ratio to echo" in table
