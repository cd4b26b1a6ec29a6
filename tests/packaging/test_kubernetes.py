"""The Kubernetes manifests: valid against the Kubernetes schemas (offline, strict, the
oldest and newest release we claim), two replicas probed through ``bxnode health``,
keys and the PostgreSQL connection from Secrets, a PDB and a NetworkPolicy that select
the node's pods; the prepare script, run here, writes a node directory the node accepts."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from node.config import load_config
from tests.packaging._common import ROOT

K8S = ROOT / "deployments" / "kubernetes"
VERSIONS = ("1.29.0", "1.37.0")


def documents() -> dict[str, dict[str, Any]]:
    """Every resource, by ``Kind/name``."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name'] if 'metadata' in doc else ''}"] = doc
    return out


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    docs = documents()
    assert set(docs) == {"Kustomization/", "Namespace/bxnode", "ServiceAccount/bxnode",
                         "ConfigMap/bxnode-config", "Job/bxnode-migrate", "Deployment/bxnode",
                         "Service/bxnode", "PodDisruptionBudget/bxnode", "NetworkPolicy/bxnode"}
    for doc in docs.values():
        if doc["kind"] == "Kustomization":
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_refuses_a_wrong_manifest() -> None:
    bad = copy.deepcopy(documents()["Deployment/bxnode"])
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)
    unknown = copy.deepcopy(documents()["Deployment/bxnode"])
    unknown["spec"]["template"]["spec"]["containers"][0]["probe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_resource_file() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_two_hardened_replicas_probed_through_bxnode_health() -> None:
    docs = documents()
    dep = docs["Deployment/bxnode"]
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001,
                                      "runAsGroup": 10001, "fsGroup": 10001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False
    (main,) = pod["containers"]
    assert main["args"] == ["serve", "--node-dir", "/var/lib/bxnode"]
    for c in (*pod["initContainers"], main):
        assert c["securityContext"] == {"allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}}
    health = ["bxnode", "health", "--node-dir", "/var/lib/bxnode"]
    assert main["readinessProbe"]["exec"]["command"] == [*health, "--timeout", "4"]
    assert main["livenessProbe"]["exec"]["command"] == [*health, "--alive", "--timeout", "4"]
    assert main["startupProbe"]["exec"]["command"] == [*health, "--alive", "--timeout", "4"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert main[probe]["timeoutSeconds"] == 5  # above the command's own 4 s


def test_keys_and_the_postgresql_connection_come_from_secrets() -> None:
    for key in ("Deployment/bxnode", "Job/bxnode-migrate"):
        pod = documents()[key]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["keys"]["secret"]["secretName"] == "bxnode-keys"
        assert volumes["postgresql"]["secret"]["secretName"] == "bxnode-postgresql"
        assert volumes["keys"]["secret"]["defaultMode"] == 0o400
        assert volumes["postgresql"]["secret"]["defaultMode"] == 0o400
        assert volumes["node-dir"]["emptyDir"]["medium"] == "Memory"
        (prepare,) = pod["initContainers"]
        assert prepare["command"] == ["/bin/sh", "/config/prepare.sh"]
        secret_mounts = {m["name"] for c in pod["containers"] for m in c["volumeMounts"]
                         if m["name"] in ("keys", "postgresql")}
        assert secret_mounts == set(), key  # only the prepare step reads the Secrets
    dep = documents()["Deployment/bxnode"]["spec"]["template"]["spec"]
    items = {v["name"]: [i["key"] for i in v["secret"]["items"]]
             for v in dep["volumes"] if "secret" in v}
    assert items == {"keys": ["signing.key", "tls.key", "tls.crt", "ca.crt"],
                     "postgresql": ["dsn", "password", "field.key"]}


def test_pdb_and_network_policy_select_the_node_pods() -> None:
    docs = documents()
    labels = docs["Deployment/bxnode"]["spec"]["template"]["metadata"]["labels"]
    pdb = docs["PodDisruptionBudget/bxnode"]["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    net = docs["NetworkPolicy/bxnode"]["spec"]
    assert net["podSelector"]["matchLabels"].items() <= labels.items()
    assert net["policyTypes"] == ["Ingress", "Egress"]
    assert [r["ports"] for r in net["ingress"]] == [[{"protocol": "TCP", "port": 50051}]]
    assert [r["ports"] for r in net["egress"]] == [
        [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        [{"protocol": "TCP", "port": 5432}], [{"protocol": "TCP", "port": 50051}]]
    svc = docs["Service/bxnode"]["spec"]
    assert svc["selector"] == labels
    assert svc["ports"][0]["targetPort"] == "grpc-peer"


def test_prepare_script_writes_a_node_directory_the_node_accepts(tmp_path: Path) -> None:
    data = documents()["ConfigMap/bxnode-config"]["data"]
    where = {"/var/lib/bxnode": tmp_path / "node", "/secrets": tmp_path / "secrets",
             "/config": tmp_path / "config"}
    for p in where.values():
        p.mkdir()
    (tmp_path / "secrets" / "keys").mkdir()
    (tmp_path / "secrets" / "postgresql").mkdir()
    (where["/config"] / "node.toml").write_text(data["node.toml"])
    for name in ("signing.key", "tls.key", "tls.crt", "ca.crt"):
        (tmp_path / "secrets" / "keys" / name).write_text(f"{name}\n")
    pg = tmp_path / "secrets" / "postgresql"
    (pg / "dsn").write_text('host=db.kaz-bs.internal dbname=bxnode_kaz user=bxnode_kaz '
                            "sslmode=verify-full application_name='bx \"node\"'\n")
    (pg / "password").write_text("s3cret\n")
    (pg / "field.key").write_text("ab" * 32 + "\n")
    for p in (*(tmp_path / "secrets" / "keys").iterdir(), *pg.iterdir()):
        p.chmod(0o440)  # a Secret file at defaultMode 0400 under fsGroup
    script = data["prepare.sh"]
    for inside, outside in where.items():
        script = script.replace(inside, str(outside))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout == "prepare: node directory ready\n"
    node = where["/var/lib/bxnode"]
    assert sorted(p.name for p in node.iterdir()) == [
        "ca.crt", "field.key", "node.toml", "pg.password", "signing.key", "tls.crt", "tls.key"]
    assert {p.name: p.stat().st_mode & 0o777 for p in node.iterdir()
            if p.name != "node.toml"} == dict.fromkeys(
        ["ca.crt", "field.key", "pg.password", "signing.key", "tls.crt", "tls.key"], 0o600)
    cfg = load_config(node)
    assert cfg.storage.backend == "postgresql"
    assert cfg.storage.dsn == ('host=db.kaz-bs.internal dbname=bxnode_kaz user=bxnode_kaz '
                               "sslmode=verify-full application_name='bx \"node\"'")
    assert (cfg.storage.password_file, cfg.storage.field_key_file) == (
        node / "pg.password", node / "field.key")
    assert (cfg.signing_key, cfg.tls_key, cfg.dev_mode) == (
        node / "signing.key", node / "tls.key", False)
    assert str(cfg.members) == "/etc/bxnode/federation/members.json"
