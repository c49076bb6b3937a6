"""A list page reads only its own records: its cost does not grow with the tenant's history."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.api.main import create_app
from service.settings import Settings
from service.state.records import FileRecord, JobRecord, new_id

RECORD_KEYS = ("file:", "job:", "model:")


@pytest.fixture
def app(tmp_path):
    return create_app(Settings(data_dir=tmp_path, store_url=None, broker_url=None, redis_url=None), resume=False)


def _record_reads(kv) -> list[str]:
    """The keys of every record read from now on."""
    reads: list[str] = []
    get, get_many = kv.get, kv.get_many
    kv.get = lambda key: (reads.append(key), get(key))[1]
    kv.get_many = lambda keys: (reads.extend(keys), get_many(keys))[1]
    return reads


def _made(records, tenant: str, path: str, n: int) -> list:
    made = []
    for i in range(n):
        if path == "/v1/files":
            made.append(FileRecord(id=new_id("file"), tenant=tenant, bytes=1, filename=f"{i}.jsonl",
                                   num_examples=1, sha256="0" * 64))
            records.add_file(made[-1])
        else:
            made.append(JobRecord(id=new_id("ftjob"), tenant=tenant, model="m", training_file="file-x",
                                  status="succeeded"))
            records.add_job(made[-1])
    return made


@pytest.mark.parametrize("path", ["/v1/files", "/v1/fine_tuning/jobs"])
def test_a_page_reads_only_its_records(app, path) -> None:
    records = app.state.context.records
    tenant, key = records.create_tenant("acme")
    made = _made(records, tenant.id, path, 30)
    reads = _record_reads(records.kv)
    ids, after, most = [], None, 0
    with TestClient(app) as client:
        while True:
            reads.clear()
            params = {"limit": 7, **({"after": after} if after else {})}
            body = client.get(path, params=params, headers={"Authorization": f"Bearer {key}"}).json()
            most = max(most, sum(k.startswith(RECORD_KEYS) for k in reads))
            ids += [item["id"] for item in body["data"]]
            if not body["has_more"]:
                break
            after = body["last_id"]
    assert ids == [r.id for r in reversed(made)]
    assert most <= 7
