"""Registry tests run against both backends: a local directory and a real S3 server."""

from __future__ import annotations

import pytest

from lock_registry.store import ObjectStore, open_store


@pytest.fixture(params=["file", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty store URL: ``file://`` in tmp_path, or ``s3://`` on SeaweedFS."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    request.getfixturevalue("s3_env")  # endpoint + credentials through the environment
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/registry-tests"


@pytest.fixture
def store(store_url: str) -> ObjectStore:
    """An empty object store of each backend."""
    return open_store(store_url)
