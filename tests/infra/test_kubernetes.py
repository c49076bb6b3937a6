"""Kubernetes manifests: valid against the Kubernetes schemas, and shaped as docs/deploy.md says."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes_validate import validate

from tests.infra.manifests import K8S, k8s_documents, k8s_kind

# Oldest and newest Kubernetes minor versions the manifests must satisfy.
VERSIONS = ["1.30.0", "1.37.0"]
DOCS = k8s_documents()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "name,doc", DOCS, ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in DOCS]
)
def test_resource_is_valid_against_the_strict_schema(name: str, doc: dict, version: str) -> None:
    validate(doc, version, strict=True)  # raises with the offending path


def test_validator_rejects_a_broken_resource() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(k8s_kind("Deployment")[0]))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(Exception, match="two"):
        validate(deployment, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(listed) == sorted(files)


def _deployment(name: str) -> dict:
    return next(d for d in k8s_kind("Deployment") if d["metadata"]["name"] == name)


def _workers() -> list[dict]:
    return [
        d for d in k8s_kind("Deployment") if d["metadata"]["name"].startswith("safetylock-worker")
    ]


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_api_probes_health_and_is_scaled_and_protected() -> None:
    api = _deployment("safetylock-api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    hpa = next(
        h for h in k8s_kind("HorizontalPodAutoscaler") if h["metadata"]["name"] == "safetylock-api"
    )
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "safetylock-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert any(_matches(p["spec"]["selector"], labels) for p in k8s_kind("PodDisruptionBudget"))
    service = next(s for s in k8s_kind("Service") if s["metadata"]["name"] == "safetylock-api")
    assert all(service["spec"]["selector"][k] == labels[k] for k in service["spec"]["selector"])


def _queues(container: dict) -> list[str]:
    args = container["args"]
    return args[args.index("--queues") + 1].split(",")


def test_one_gpu_worker_deployment_and_queue_per_accelerator() -> None:
    workers = _workers()
    assert len(workers) >= 2
    own_queues, accelerators = [], []
    for worker in workers:
        pod = worker["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        own_queues.append(_queues(container)[0])
        accelerators.append(pod["nodeSelector"]["nvidia.com/gpu.product"])
        # Long enough for a running training stage to checkpoint after SIGTERM.
        assert pod["terminationGracePeriodSeconds"] >= 600
        labels = worker["spec"]["template"]["metadata"]["labels"]
        assert any(_matches(p["spec"]["selector"], labels) for p in k8s_kind("PodDisruptionBudget"))
    assert len(set(own_queues)) == len(own_queues) and len(set(accelerators)) == len(accelerators)


def test_every_base_model_reaches_a_consumed_queue() -> None:
    from service.worker.celery_app import QUEUE

    data = k8s_kind("ConfigMap")[0]["data"]
    routes = json.loads(data["SAFETYLOCK_QUEUES"])
    consumed = {
        q for w in _workers() for q in _queues(w["spec"]["template"]["spec"]["containers"][0])
    }
    for model in json.loads(data["SAFETYLOCK_BASE_MODELS"]):
        assert routes.get(model, QUEUE) in consumed, model
    assert QUEUE in consumed, "models without a route must still be served"


def test_pods_run_unprivileged() -> None:
    for kind in ("Deployment", "StatefulSet"):
        for doc in k8s_kind(kind):
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
            for container in pod["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_secrets_come_from_the_secret_and_settings_from_the_configmap() -> None:
    secret_keys = set(k8s_kind("Secret")[0]["stringData"])
    config = k8s_kind("ConfigMap")[0]
    for deployment in k8s_kind("Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        for var in container["env"]:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secret_keys and ref["name"] == "safetylock-secrets"
        assert {"SAFETYLOCK_BROKER_URL", "AWS_SECRET_ACCESS_KEY"} <= {
            v["name"] for v in container["env"]
        }
    assert not {k for k in config["data"] if "SECRET" in k or "PASSWORD" in k or "PEPPER" in k}


def test_configmap_names_only_real_settings() -> None:
    from service.settings import Settings

    fields = {f"SAFETYLOCK_{name.upper()}" for name in Settings.model_fields}
    names = set(k8s_kind("ConfigMap")[0]["data"]) | set(k8s_kind("Secret")[0]["stringData"])
    unknown = {n for n in names if n.startswith("SAFETYLOCK_")} - fields
    assert not unknown, f"not SafetyLock settings: {sorted(unknown)}"
