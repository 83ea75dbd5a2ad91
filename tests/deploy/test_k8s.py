"""deploy/k8s: every manifest validates against the Kubernetes JSON schemas (offline, bundled by the
``kubernetes-validate`` package, strict: unknown fields fail), the pieces refer to each other
correctly, and the ConfigMap's TOML is a configuration the workers accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streams.config import ENV_PREFIX, Settings, load_settings
from tests.support.debian_tools import run_tool

pytestmark = pytest.mark.needs_debian("promtool")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
#: An older Kubernetes release still common in clusters, and the newest the pinned schema package
#: knows: the manifests must be valid for both (no field too new, none removed).
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> dict[str, dict[str, Any]]:
    """Every manifest, by kind (one object of each kind here)."""
    docs: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in docs, f"two {doc['kind']} objects"
            docs[doc["kind"]] = doc
    return docs


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path, version: str) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


def test_the_schema_check_rejects_a_broken_manifest() -> None:
    """The validator really looks: a misspelt field and a wrong type are caught."""
    sts = documents()["StatefulSet"]
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[0], strict=True)
    sts = documents()["StatefulSet"]
    sts["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in MANIFESTS} - {"secret.example.yaml"}


def test_statefulset_service_and_config_fit_together(tmp_path: Path) -> None:
    docs = documents()
    sts, service, config = docs["StatefulSet"], docs["Service"], docs["ConfigMap"]
    pod = sts["spec"]["template"]
    container = pod["spec"]["containers"][0]
    labels = pod["metadata"]["labels"]

    # The headless service governs the StatefulSet and selects its pods.
    assert service["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert {doc["metadata"].get("namespace") for kind, doc in docs.items() if kind != "Namespace"} == \
        {docs["Namespace"]["metadata"]["name"]}

    # The metrics port is the one the worker serves, the one scraped, and the one the service exposes.
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"

    # The worker's settings: the ConfigMap's TOML plus the container's ENGAGEMENT_* variables.
    env = {e["name"]: e.get("value", "secret") for e in container["env"]}
    assert all(name[len(ENV_PREFIX):].lower() in Settings.__dataclass_fields__ or name == f"{ENV_PREFIX}CONFIG"
               for name in env), env
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")
    assert config_volume["configMap"]["name"] == config["metadata"]["name"]
    (tmp_path / "engagement.toml").write_text(config["data"]["engagement.toml"])
    assert env[f"{ENV_PREFIX}CONFIG"] == f"{mounts['config']}/engagement.toml"
    settings = load_settings(tmp_path / "engagement.toml",
                             env={k: v for k, v in env.items() if k != f"{ENV_PREFIX}CONFIG"})
    assert settings.store == "rocksdb://"
    assert settings.data_dir == mounts["data"]  # RocksDB lives on the pod's own volume
    assert settings.web_host == "0.0.0.0" and settings.web_port == port
    assert [t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    assert sts["spec"]["replicas"] <= settings.partitions  # more would stand idle


def test_kubernetes_prometheus_config_is_valid() -> None:
    """promtool checks deploy/prometheus/prometheus-k8s.yml. Debian builds Prometheus without
    Kubernetes discovery, so the discovery block is swapped for file discovery first; the
    relabelling, the job and the rule files are checked as written."""
    source = REPO / "deploy" / "prometheus" / "prometheus-k8s.yml"
    doc = yaml.safe_load(source.read_text())
    job = next(j for j in doc["scrape_configs"] if j["job_name"] == "engagement-worker")
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    job.pop("kubernetes_sd_configs")
    job["file_sd_configs"] = [{"files": ["targets.json"]}]
    checked = source.parent / ".prometheus-k8s-check.yml"  # next to it: rule_files are relative
    checked.write_text(yaml.safe_dump(doc))
    try:
        result = run_tool("promtool", "check", "config", str(checked))
    finally:
        checked.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout
