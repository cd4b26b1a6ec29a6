"""The Kubernetes manifests: valid against the Kubernetes schemas (offline, strict, the
oldest and newest release we claim), two replicas probed through ``bxnode health``,
keys and the PostgreSQL connection from Secrets, a PDB and a NetworkPolicy that select
the node's pods, metrics kept on the pod's loopback and sent on by a sidecar agent; the
prepare script, run here, writes a node directory the node accepts."""

from __future__ import annotations

import copy
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from node.config import load_config
from node.observability.settings import MetricsSettings
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
    main, agent = pod["containers"]
    assert (main["name"], agent["name"]) == ("bxnode", "metrics-agent")
    assert main["args"] == ["serve", "--node-dir", "/var/lib/bxnode"]
    for c in (*pod["initContainers"], main, agent):
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
                     "postgresql": ["dsn", "password", "field.key"],
                     "metrics": ["remote-write.token"]}


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
        [{"protocol": "TCP", "port": 5432}], [{"protocol": "TCP", "port": 50051}],
        [{"protocol": "TCP", "port": 443}]]  # the metrics agent's remote write
    svc = docs["Service/bxnode"]["spec"]
    assert svc["selector"] == labels
    assert svc["ports"][0]["targetPort"] == "grpc-peer"


def test_metrics_stay_on_the_pods_loopback_and_a_sidecar_sends_them_on() -> None:
    """[metrics] is a loopback address (the endpoint has no TLS and no authentication); the
    pod's metrics-agent container (Prometheus in agent mode) scrapes exactly that address
    and remote-writes over HTTPS with a token only it mounts; no pod port, scrape
    annotation or Service exposes the endpoint, and the agent's own web listener is on
    the loopback too."""
    docs = documents()
    data = docs["ConfigMap/bxnode-config"]["data"]
    toml = tomllib.loads(data["node.toml"])
    metrics = MetricsSettings.parse(Path("/var/lib/bxnode"), toml["metrics"],
                                    peer_listen=toml["server"]["listen"])
    assert metrics is not None and (metrics.host, metrics.port) == ("127.0.0.1", 9464)
    agent_cfg = yaml.safe_load(data["metrics-agent.yml"])
    (job,) = agent_cfg["scrape_configs"]
    assert job["static_configs"] == [{"targets": [metrics.address]}]
    assert agent_cfg["global"]["external_labels"] == {"node": "KAZ-BS", "pod": "${POD_NAME}"}
    (remote,) = agent_cfg["remote_write"]
    assert remote["url"].startswith("https://")
    assert remote["authorization"] == {
        "credentials_file": "/secrets/metrics/remote-write.token"}

    template = docs["Deployment/bxnode"]["spec"]["template"]
    assert "annotations" not in template["metadata"]  # no prometheus.io/scrape: nothing to
    pod = template["spec"]                             # scrape from outside the pod
    _, agent = pod["containers"]
    assert [p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])] == [
        50051]
    assert agent["image"].startswith("quay.io/prometheus/prometheus:v3.")  # ${...} expanded
    assert agent["args"] == ["--agent", "--config.file=/config/metrics-agent.yml",
                             "--storage.agent.path=/prometheus",
                             "--web.listen-address=127.0.0.1:9095"]
    assert agent["env"] == [{"name": "POD_NAME",
                             "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
    mounts = {c["name"]: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
              for c in pod["containers"]}
    assert mounts["metrics-agent"] == {"config": "/config", "metrics": "/secrets/metrics",
                                       "metrics-wal": "/prometheus"}
    assert "metrics" not in mounts["bxnode"]  # the remote-write token: the agent's only
    svc_ports = [p["targetPort"] for p in docs["Service/bxnode"]["spec"]["ports"]]
    assert svc_ports == ["grpc-peer"]
    assert [r["ports"] for r in docs["NetworkPolicy/bxnode"]["spec"]["ingress"]] == [
        [{"protocol": "TCP", "port": 50051}]]


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
    assert cfg.metrics is not None and cfg.metrics.label == "127.0.0.1:9464"
