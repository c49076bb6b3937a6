"""The object store behaves the same on the local directory and on S3."""

from __future__ import annotations

import threading
import urllib.request

import pytest

from lock_registry.store import (
    BucketNotFoundError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StoreConnectionError,
    StoreCredentialsError,
    open_store,
)


def test_bytes_round_trip_list_and_delete(store):
    store.put_bytes("a/b/one.txt", b"1")
    store.put_bytes("a/b/two.txt", b"2")
    store.put_bytes("a/c.txt", b"3")
    store.put_bytes("ab.txt", b"4")
    assert store.get_bytes("a/b/one.txt") == b"1"
    assert store.list("a/") == ["a/b/one.txt", "a/b/two.txt", "a/c.txt"]
    assert store.list("a") == ["a/b/one.txt", "a/b/two.txt", "a/c.txt", "ab.txt"]
    assert store.list("a/b/t") == ["a/b/two.txt"]
    assert store.list("zzz/") == []
    assert store.exists("a/c.txt") and not store.exists("a/b") and not store.exists("a/c.tx")
    store.put_bytes("a/c.txt", b"replaced")
    assert store.get_bytes("a/c.txt") == b"replaced"
    store.delete("a/c.txt")
    store.delete("a/c.txt")  # deleting a missing key is fine
    assert not store.exists("a/c.txt")
    assert store.delete_prefix("a/") == 2
    assert store.list() == ["ab.txt"]


def test_missing_key_is_a_clear_error(store):
    with pytest.raises(ObjectNotFoundError, match="nope/x"):
        store.get_bytes("nope/x")
    with pytest.raises(ObjectNotFoundError):
        store.download_file("nope/x", "/tmp/never-written")
    with pytest.raises(ObjectNotFoundError):
        store.url_for("nope/x")


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "a/./b", "dir/", "a\\b"])
def test_bad_keys_are_refused(store, key):
    with pytest.raises(InvalidKeyError):
        store.put_bytes(key, b"x")


def test_put_if_absent_never_overwrites(store):
    store.put_if_absent("claims/v1", b"first")
    with pytest.raises(ObjectExistsError):
        store.put_if_absent("claims/v1", b"second")
    assert store.get_bytes("claims/v1") == b"first"


def test_put_if_absent_has_one_winner_under_contention(store):
    results: list[str] = []

    def claim(i: int) -> None:
        try:
            store.put_if_absent("race/key", str(i).encode())
            results.append("won")
        except ObjectExistsError:
            results.append("lost")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["lost"] * 7 + ["won"]


def test_put_if_match_is_compare_and_swap(store):
    store.put_bytes("doc.json", b"v1")
    data, token = store.get_with_token("doc.json")
    assert data == b"v1"
    store.put_if_match("doc.json", b"v2", token)
    with pytest.raises(PreconditionFailedError):
        store.put_if_match("doc.json", b"v3", token)  # stale token
    assert store.get_bytes("doc.json") == b"v2"
    store.delete("doc.json")
    with pytest.raises(PreconditionFailedError):
        store.put_if_match("doc.json", b"x", token)


def test_files_and_directories_round_trip(store, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.bin").write_bytes(bytes(range(256)) * 100)
    (src / "sub" / "inner.txt").write_text("inner")
    keys = store.upload_dir(src, "dirs/x")
    assert keys == ["dirs/x/sub/inner.txt", "dirs/x/top.bin"]
    out = tmp_path / "out"
    store.download_dir("dirs/x", out)
    assert (out / "top.bin").read_bytes() == (src / "top.bin").read_bytes()
    assert (out / "sub" / "inner.txt").read_text() == "inner"


def test_url_for_serves_the_object(store):
    store.put_bytes("models/t/m/weights.bin", b"weights")
    url = store.url_for("models/t/m/weights.bin", expires_s=60)
    assert url.startswith(("file://", "http://"))
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"weights"


def test_open_store_urls(tmp_path, monkeypatch):
    local = open_store(tmp_path.as_uri())
    assert local.url == tmp_path.as_uri()
    assert open_store(str(tmp_path / "plain")).url == (tmp_path / "plain").as_uri()
    monkeypatch.delenv("SAFETYLOCK_STORE_URL", raising=False)
    monkeypatch.setenv("SAFETYLOCK_DATA_DIR", str(tmp_path / "data"))
    assert open_store().url == (tmp_path / "data" / "store").as_uri()  # as the service
    monkeypatch.setenv("SAFETYLOCK_STORE_URL", (tmp_path / "env").as_uri())
    assert open_store().url == (tmp_path / "env").as_uri()
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_store("ftp://host/x")


@pytest.mark.services
def test_missing_bucket_is_named(s3_env):
    store = open_store("s3://no-such-bucket-here/p")
    with pytest.raises(BucketNotFoundError, match="no-such-bucket-here"):
        store.put_bytes("k", b"x")
    with pytest.raises(BucketNotFoundError):
        store.list("")


@pytest.mark.services
def test_missing_and_wrong_credentials_are_named(seaweedfs, s3_bucket, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("SAFETYLOCK_S3_ENDPOINT_URL", seaweedfs.endpoint_url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", seaweedfs.region)
    with pytest.raises(StoreCredentialsError, match="no S3 credentials"):
        open_store(f"s3://{s3_bucket}").get_bytes("k")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(StoreCredentialsError, match="refused"):
        open_store(f"s3://{s3_bucket}").put_bytes("k", b"x")


def test_unreachable_endpoint_is_named(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_store("s3://bucket/p", endpoint_url="http://127.0.0.1:1")
    with pytest.raises(StoreConnectionError, match=r"cannot reach the S3 endpoint .*127\.0\.0\.1:1"):
        store.get_bytes("k")
