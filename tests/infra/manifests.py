"""Paths of the infra/ artifacts and small readers shared by the static infra tests."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
COMPOSE = INFRA / "compose.yaml"
K8S = INFRA / "k8s"
DOCKERFILES = sorted((INFRA / "docker").glob("*.Dockerfile"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A command-line tool installed into this interpreter's environment by the dev extra."""
    path = BIN / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} not found in {BIN}: install the dev extra (pip install -e '.[dev]')"
        )
    return str(path)


def k8s_documents() -> list[tuple[str, dict]]:
    """Every Kubernetes resource in infra/k8s as (file name, document), kustomization excluded."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def k8s_kind(kind: str) -> list[dict]:
    """All resources of one kind."""
    return [doc for _, doc in k8s_documents() if doc["kind"] == kind]
