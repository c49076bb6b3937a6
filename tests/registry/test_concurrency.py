"""Concurrent publishers and alias writers: distinct versions, no lost or torn writes."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading

import pytest

from lock_registry.registry import LockRegistry
from tests.registry.lockdirs import BASE_ID, make_lock_dir


def _publisher(name: str, lock_dirs: list[str], store_urls: list[str], barrier, results) -> None:
    """One publisher process: for each store, wait for the other, then publish all."""
    published = []
    for store_url in store_urls:
        registry = LockRegistry(store_url)
        barrier.wait(timeout=60)  # both start publishing to this store now
        published.append([registry.publish(d, actor=name).to_dict() for d in lock_dirs])
    results[name] = published


@pytest.mark.services
def test_two_processes_publishing_at_once_get_distinct_versions(tmp_path, s3_env, s3_bucket):
    """Two forked publisher processes race on a local store, then on S3."""
    context = multiprocessing.get_context("fork")  # forked: no second torch import
    store_urls = [(tmp_path / "store").as_uri(), f"s3://{s3_bucket}/race"]
    per_process, names = 3, ("p0", "p1")
    barrier, results = context.Barrier(2), context.Manager().dict()
    procs, expected = [], {}
    for p, name in enumerate(names):
        dirs = [
            make_lock_dir(tmp_path / f"{name}-{i}", seed=10 * p + i) for i in range(per_process)
        ]
        expected[name] = sorted(
            json.loads((d / "manifest.json").read_text())["sha256"] for d in dirs
        )
        procs.append(context.Process(
            target=_publisher, args=(name, [str(d) for d in dirs], store_urls, barrier, results)
        ))  # fmt: skip
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0]

    for phase, store_url in enumerate(store_urls):
        batches = {name: results[name][phase] for name in names}
        versions = sorted(info["version"] for batch in batches.values() for info in batch)
        assert versions == list(range(1, 2 * per_process + 1)), store_url
        registry = LockRegistry(store_url)
        assert [r.status for r in registry.verify()] == ["ok"] * 2 * per_process
        by_version = {info.version: info for info in registry.versions(BASE_ID)}
        for name, batch in batches.items():
            assert sorted(info["sha256"] for info in batch) == expected[name]
            for info in batch:  # each number holds exactly what its publisher wrote
                assert by_version[info["version"]].sha256 == info["sha256"]
                assert by_version[info["version"]].published_by == name


def test_concurrent_alias_moves_lose_no_audit_entry(store, tmp_path):
    registry = LockRegistry(store)
    for seed in range(2):
        registry.publish(make_lock_dir(tmp_path / f"l{seed}", seed=seed))
    moves = 4

    def mover(version: int) -> None:
        for _ in range(moves):
            registry.promote(f"{BASE_ID}@v{version}", "production", actor=f"t{version}")

    threads = [threading.Thread(target=mover, args=(v,)) for v in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log = registry.history(BASE_ID)
    assert len(log) == 2 * moves
    assert sorted(e.by for e in log) == ["t1"] * moves + ["t2"] * moves
    # a consistent chain: each move starts where the previous one ended
    for before, after in itertools.pairwise(log):
        assert after.from_version == before.to_version
    assert registry.resolve(BASE_ID).version == log[-1].to_version
