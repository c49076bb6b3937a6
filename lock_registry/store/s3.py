"""``s3://bucket/prefix`` backend through boto3 (any S3-compatible endpoint).

Conditional writes are S3's own: ``put_if_absent`` is ``PutObject`` with
``If-None-Match: *`` and ``put_if_match`` is ``PutObject`` with ``If-Match: <ETag>``
(AWS S3 since 2024, SeaweedFS, MinIO); the server answers 412 when the condition fails.
Credentials and region come from boto3's usual chain (``AWS_ACCESS_KEY_ID``, ...); the
endpoint from the ``endpoint_url`` argument, else boto3's ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .base import ObjectStore
from .errors import (
    BucketNotFoundError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StoreConnectionError,
    StoreCredentialsError,
    StoreError,
)
from .keys import check_key, check_prefix

T = TypeVar("T")
NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
BAD_CREDENTIALS = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
    "InvalidToken", "ExpiredToken", "AuthorizationHeaderMalformed",
}  # fmt: skip
CONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


_loader = None


def _fresh_session():
    """A boto3 session that reads credentials from the environment now (boto3's default
    session caches them), sharing one loader of botocore's data files (slow to parse)."""
    global _loader
    import boto3.session
    import botocore.session

    core = botocore.session.get_session()
    if _loader is None:
        _loader = core.get_component("data_loader")
    core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


class S3Store(ObjectStore):
    """Objects under ``prefix`` in one bucket."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client=None) -> None:  # fmt: skip
        from botocore.config import Config

        if not bucket:
            raise ValueError("an S3 store needs a bucket: s3://BUCKET[/PREFIX]")
        self.bucket = bucket
        self.prefix = check_prefix(prefix.strip("/"))
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
        )
        self.client = client or _fresh_session().client(
            "s3", endpoint_url=endpoint_url, config=config
        )

    # keys -----------------------------------------------------------------
    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unkey(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    # error mapping --------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one boto3 call, turning its errors into :class:`StoreError` subclasses."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, what) from None

    def _translate(self, exc: Exception, what: str) -> StoreError:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = f"{self.url} ({self.endpoint_url or 'default endpoint'})"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StoreCredentialsError(
                f"no S3 credentials for {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or an AWS profile)"
            )
        if isinstance(exc, EndpointConnectionError):
            return StoreConnectionError(f"cannot reach the S3 endpoint of {where}: {exc}")
        if not isinstance(exc, ClientError):
            return StoreError(f"S3 error on {what!r} in {where}: {exc}")
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return BucketNotFoundError(f"S3 bucket {self.bucket!r} does not exist at {where}")
        if code in NOT_FOUND:
            return ObjectNotFoundError(f"no object {what!r} in {self.url}")
        if code in BAD_CREDENTIALS:
            return StoreCredentialsError(f"S3 refused the credentials for {where} ({code})")
        return StoreError(f"S3 error on {what!r} in {where}: {code}: {exc}")

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in CONDITION_FAILED and "IfNoneMatch" in condition:
                raise ObjectExistsError(f"{self.url}/{key} already exists") from None
            if code in CONDITION_FAILED or code in NOT_FOUND:  # AWS: 404 if it was deleted
                raise PreconditionFailedError(
                    f"{self.url}/{key} changed or was deleted since it was read"
                ) from None
            raise self._translate(exc, key) from None
        except BotoCoreError as exc:
            raise self._translate(exc, key) from None

    # interface ------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(key, lambda: self.client.put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data))  # fmt: skip

    def put_if_absent(self, key: str, data: bytes) -> None:
        self._conditional_put(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, token: str) -> None:
        self._conditional_put(key, data, IfMatch=token)

    def get_with_token(self, key: str) -> tuple[bytes, str]:
        response = self._call(key, lambda: self.client.get_object(
            Bucket=self.bucket, Key=self._key(key)))  # fmt: skip
        return response["Body"].read(), response["ETag"]

    def get_bytes(self, key: str) -> bytes:
        return self.get_with_token(key)[0]

    def exists(self, key: str) -> bool:
        # a one-key listing, not HEAD: HEAD cannot tell a missing bucket from a missing key
        full = self._key(key)
        response = self._call(key, lambda: self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=full, MaxKeys=1))  # fmt: skip
        contents = response.get("Contents", [])
        return bool(contents) and contents[0]["Key"] == full

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix

        def collect() -> list[str]:
            paginator = self.client.get_paginator("list_objects_v2")
            keys = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(self._unkey(item["Key"]) for item in page.get("Contents", []))
            return keys

        return sorted(self._call(prefix or "/", collect))

    def delete(self, key: str) -> None:
        self._call(key, lambda: self.client.delete_object(
            Bucket=self.bucket, Key=self._key(key)))  # fmt: skip

    def upload_file(self, path: str | Path, key: str) -> None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"{source} is not a file")
        self._call(key, lambda: self.client.upload_file(str(source), self.bucket, self._key(key)))

    def download_file(self, key: str, path: str | Path) -> None:
        self._call(key, lambda: self.client.download_file(self.bucket, self._key(key), str(path)))

    def url_for(self, key: str, expires_s: int = 3600) -> str:
        if not self.exists(key):
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}")
        return self._call(key, lambda: self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=expires_s))  # fmt: skip
