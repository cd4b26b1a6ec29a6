"""The compose files, checked offline (``docker compose config`` is not available here):
services, images without keys, hardening, secrets from files; the demo's setup script
run outside a container builds a federation whose node serves and answers its health."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from node.config import load_config
from tests.packaging._common import BIN, ROOT, tool
from tests.waiting import until_file

COMPOSE = ROOT / "deployments" / "compose"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / name).read_text())
    return doc


def bxnode_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in doc["services"].items() if s.get("image") == "bxnode:0.1.0"}


def check_hardened(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        assert svc["read_only"] is True, name
        assert svc["user"] == "10001:10001", name
        assert svc["cap_drop"] == ["ALL"], name
        assert svc["security_opt"] == ["no-new-privileges:true"], name
        assert svc["tmpfs"] == ["/tmp"], name
        build = svc.get("build")
        if build is not None:  # the image is built from the repository's Dockerfile only
            assert (COMPOSE / build["context"]).resolve() == ROOT, name
            assert build["dockerfile"] == "Dockerfile", name


def test_demo_federation_services_and_keys() -> None:
    doc = load("demo-federation.yaml")
    assert set(doc["services"]) == {"setup", "kaz", "kgz", "uzb"}
    nodes = bxnode_services(doc)
    assert set(nodes) == {"setup", "kaz", "kgz", "uzb"}
    check_hardened(nodes)
    for name, node_dir in (("kaz", "kaz"), ("kgz", "kgz"), ("uzb", "uzb")):
        svc = nodes[name]
        assert svc["command"] == ["serve", "--node-dir", f"/var/lib/bxnode/{node_dir}"]
        assert svc["healthcheck"]["test"] == ["CMD", "bxnode", "health", "--node-dir",
                                              f"/var/lib/bxnode/{node_dir}"]
        assert svc["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
        assert svc["volumes"] == ["federation:/var/lib/bxnode"]  # no key mount on a node
    assert nodes["kgz"]["network_mode"] == nodes["uzb"]["network_mode"] == "service:kaz"
    assert nodes["kaz"]["ports"] == ["127.0.0.1:50051-50053:50051-50053"]
    # The development keys reach only the one-shot setup, read-only, from the host.
    key_mounts = [(n, v) for n, s in doc["services"].items() for v in s.get("volumes", [])
                  if "keys" in v.split(":")[0]]
    assert key_mounts == [("setup", "../../keys/dev:/dev-keys:ro")]
    assert nodes["setup"]["network_mode"] == "none"


def test_replicated_node_services_and_secrets() -> None:
    doc = load("replicated-postgresql.yaml")
    assert set(doc["services"]) == {"postgres", "migrate", "replica-a", "replica-b"}
    nodes = bxnode_services(doc)
    assert set(nodes) == {"migrate", "replica-a", "replica-b"}
    check_hardened(nodes)
    secrets = {"signing_key", "tls_key", "tls_crt", "ca_crt", "field_key", "pg_password"}
    assert set(doc["secrets"]) == secrets
    for name, spec in doc["secrets"].items():  # secrets are files, never inline values
        assert set(spec) == {"file"}, name
        assert spec["file"].startswith("./replicated/secrets/"), name
    assert (COMPOSE / "replicated" / ".gitignore").read_text().splitlines()[1] == "secrets/"
    for name, svc in nodes.items():
        assert set(svc["secrets"]) == secrets, name
        assert "environment" not in svc, name  # no password in the environment
        assert not [v for v in svc.get("volumes", []) if "keys" in v], name
    assert nodes["migrate"]["command"] == ["store", "migrate", "--node-dir", "/var/lib/bxnode"]
    for name in ("replica-a", "replica-b"):
        assert nodes[name]["command"] == ["serve", "--node-dir", "/var/lib/bxnode"]
        assert nodes[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}}
        assert nodes[name]["healthcheck"]["test"] == ["CMD", "bxnode", "health",
                                                      "--node-dir", "/var/lib/bxnode"]
    pg = doc["services"]["postgres"]
    assert pg["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/pg_password"
    assert not [k for k in pg["environment"] if k == "POSTGRES_PASSWORD"]
    assert pg["secrets"] == ["pg_password"]


def test_replicated_node_toml_names_every_secret_under_run_secrets() -> None:
    cfg = load_config(COMPOSE / "replicated" / "node.toml")
    assert cfg.dev_mode is False
    assert cfg.storage.backend == "postgresql"
    assert "password" not in (cfg.storage.dsn or "")
    assert [str(p) for p in (cfg.signing_key, cfg.tls_key, cfg.tls_cert, cfg.tls_ca,
                             cfg.storage.password_file, cfg.storage.field_key_file)] == [
        "/run/secrets/signing_key", "/run/secrets/tls_key", "/run/secrets/tls_crt",
        "/run/secrets/ca_crt", "/run/secrets/pg_password", "/run/secrets/field_key"]
    doc = load("replicated-postgresql.yaml")
    assert {f"/run/secrets/{s}" for s in doc["secrets"]} == {
        str(p) for p in (cfg.signing_key, cfg.tls_key, cfg.tls_cert, cfg.tls_ca,
                         cfg.storage.password_file, cfg.storage.field_key_file)}


def test_demo_setup_script_builds_a_federation_that_serves(tmp_path: Path) -> None:
    base = tmp_path / "federation"
    base.mkdir()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}",
           "BXNODE_DEMO_BASE": str(base), "BXNODE_DEMO_KEYS": str(ROOT / "keys" / "dev"),
           "BXNODE_DEMO_DATA": str(ROOT / "deployments" / "demo"),
           "BXNODE_DEMO_POLICY": str(ROOT / "policies")}
    script = COMPOSE / "demo" / "setup.sh"
    out = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.splitlines()[-1] == (
        "setup: KAZ-BS, KGZ-BS and UZB-BS initialised (development keys)")
    for folder, node_id, port in (("kaz", "KAZ-BS", 50051), ("kgz", "KGZ-BS", 50052),
                                  ("uzb", "UZB-BS", 50053)):
        cfg = load_config(base / folder)
        assert (cfg.node_id, cfg.listen, cfg.dev_mode) == (node_id, f"0.0.0.0:{port}", True)
        assert (base / folder / "signing.key").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True,
                           check=True, timeout=60)
    assert again.stdout == f"setup: federation already initialised in {base}\n"
    serve = subprocess.Popen([tool("bxnode"), "serve", "--node-dir", str(base / "kgz"),
                              "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        until_file(base / "kgz" / "serve.port", serve, timeout=30)
        health = subprocess.run([tool("bxnode"), "health", "--node-dir", str(base / "kgz")],
                                capture_output=True, text=True, timeout=30)
        served = (base / "kgz" / "serve.port").read_text().strip()
        assert (health.returncode, health.stdout) == (0, f"127.0.0.1:{served} (server): SERVING\n")
    finally:
        serve.terminate()
        assert serve.wait(timeout=30) == 0
