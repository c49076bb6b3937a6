"""The tables `safetylock lock ...` prints: a lock's summary (from its directory or from
the registry), its chosen heads, and lists of published versions.

A kind's extra manifest fields (what `register_kind` kinds add) are rows of the summary;
its per-head lists (e.g. a conditional lock's `head_effects`) are columns of the heads table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from lock_registry.lock import LockManifest
    from lock_registry.registry_types import AliasEvent, VerifyResult, VersionInfo


def kind_rows(manifest: LockManifest) -> dict[str, str]:
    """The manifest's kind-specific fields (what `register_kind` kinds add), one row each;
    per-head lists are left to the heads table (`per_head_columns`)."""
    per_head = per_head_columns(manifest)
    rows = {}
    for key, value in (manifest.model_extra or {}).items():
        if key in per_head:
            continue
        if isinstance(value, float):
            rows[key] = f"{value:.6g}"
        elif isinstance(value, dict | list):
            rows[key] = json.dumps(value, separators=(", ", ": "))
        else:
            rows[key] = str(value)
    return rows


def per_head_columns(manifest: LockManifest) -> dict[str, list]:
    """Extra manifest lists with one number per chosen head (e.g. a conditional lock's
    `head_effects`), keyed by field name."""
    return {
        key: value
        for key, value in (manifest.model_extra or {}).items()
        if isinstance(value, list)
        and len(value) == manifest.num_selected
        and all(isinstance(v, int | float) for v in value)
    }


def heads_table(manifest: LockManifest) -> Table:
    """The chosen heads with their probe accuracies (when known) and per-head fields."""
    columns = per_head_columns(manifest)
    accuracies = any(entry.probe_accuracy is not None for entry in manifest.heads)
    table = Table(
        "layer", "head", *(["probe accuracy"] if accuracies else []), *columns, title="chosen heads"
    )
    for i, entry in enumerate(manifest.heads):
        cells = [str(entry.layer), str(entry.head)]
        if accuracies:
            cells.append("-" if entry.probe_accuracy is None else f"{entry.probe_accuracy:.3f}")
        cells += [f"{values[i]:.4g}" for values in columns.values()]
        table.add_row(*cells)
    return table


def lock_table(manifest: LockManifest) -> Table:
    """A lock directory's manifest, one row per field (headerless)."""
    table = Table(show_header=False)
    rows = {
        "kind": manifest.kind,
        "base model": f"{manifest.base_model.id} ({manifest.base_model.fingerprint[:16] or '?'})",
        "architecture": manifest.architecture,
        "geometry": f"{manifest.num_layers} layers x {manifest.num_heads} heads x {manifest.head_dim}",
        "K last tokens": str(manifest.last_tokens),
        "N heads": str(manifest.num_selected),
        "default alpha": str(manifest.default_alpha),
        "data": manifest.data_fingerprint[:16],
        "created": f"{manifest.created_at} by {manifest.creator or '?'}",
        "library": manifest.library_version,
        "parent": manifest.parent or "-",
        "sha256": manifest.sha256,
        **kind_rows(manifest),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def version_table(info: VersionInfo, manifest: LockManifest, store_url: str) -> Table:
    """A published version: its registry record and manifest, one row per field."""
    fields = manifest.model_dump(mode="json")
    table = Table(
        show_header=False, title=f"{info.base_model_id}@v{info.version} (sha256 verified)"
    )
    rows = {
        "base model": f"{info.base_model_id} (fingerprint {info.base_fingerprint or 'unpinned'})",
        "version": f"v{info.version}" + (" [yellow]deprecated[/]" if info.deprecated else ""),
        "aliases": ", ".join(info.aliases) or "-",
        "kind": info.kind,
        "geometry": f"{fields['num_layers']} layers x {fields['num_heads']} heads "
                    f"x {fields['head_dim']}, N={info.num_selected}, K={fields['last_tokens']}",
        "data": info.data_fingerprint,
        "created": f"{info.created_at} by {info.creator or '?'} (safetylock {info.library_version})",
        "published": f"{info.published_at} by {info.published_by}",
        "parent": info.parent or "-",
        "sha256": info.sha256,
        "store": f"{store_url}/locks/{info.base_key}/v{info.version}/",
        **kind_rows(manifest),
    }  # fmt: skip
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def versions_table(infos: list[VersionInfo], title: str) -> Table:
    """Published versions, one row each: base model, revision, version, aliases, status."""
    table = Table(title=title)
    for column in ("base model", "revision", "version", "aliases", "status", "sha256"):
        table.add_column(column, no_wrap=True)
    for info in infos:
        table.add_row(
            info.base_model_id,
            info.base_key.rsplit("@", 1)[1][:8],
            f"v{info.version}",
            ", ".join(info.aliases) or "-",
            "[yellow]deprecated[/]" if info.deprecated else "active",
            info.sha256[:8],
        )
    return table


def history_table(events: list[AliasEvent], title: str) -> Table:
    """An audit log, one row per event: alias moves, deprecations, deletes."""
    table = Table("when", "who", "action", "alias", "from", "to", "reason", title=title)

    def version(value: int | None) -> str:
        return "-" if value is None else f"v{value}"

    for e in events:
        table.add_row(e.at, e.by, e.action, e.alias or "-", version(e.from_version),
                      version(e.to_version), e.reason or "-")  # fmt: skip
    return table


def verify_table(results: list[VerifyResult], title: str) -> Table:
    """One row per stored version re-hashed: ok (green) or what is wrong (red)."""
    table = Table("base", "version", "status", "detail", title=title)
    for r in results:
        colour = "green" if r.ok else "red"
        detail = f"sha256 {r.detail[:16]}… matches" if r.ok else r.detail
        table.add_row(r.base_key[: r.base_key.index("@") + 9], f"v{r.version}",
                      f"[{colour}]{r.status}[/]", detail)  # fmt: skip
    return table
