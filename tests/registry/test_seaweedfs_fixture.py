"""The SeaweedFS fixture starts a real S3 server that other suites can rely on."""

import pytest

pytestmark = pytest.mark.services


def test_fresh_bucket_round_trips_an_object(seaweedfs, s3_bucket):
    client = seaweedfs.client()
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    client.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=s3_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert seaweedfs.make_bucket() != s3_bucket
