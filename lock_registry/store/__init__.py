"""Object store: one interface over a local directory (``file://``) and S3 (``s3://``)."""

from .base import ObjectStore
from .errors import (
    BucketNotFoundError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StoreConnectionError,
    StoreCredentialsError,
    StoreError,
)
from .local import LocalStore
from .url import default_store_url, open_store

__all__ = [
    "BucketNotFoundError",
    "InvalidKeyError",
    "LocalStore",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "ObjectStore",
    "PreconditionFailedError",
    "StoreConnectionError",
    "StoreCredentialsError",
    "StoreError",
    "default_store_url",
    "open_store",
]
