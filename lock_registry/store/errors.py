"""Object store errors: one root, one subclass per thing a caller can act on."""

from __future__ import annotations


class StoreError(Exception):
    """Any object store failure; the message names the store URL or key."""


class InvalidKeyError(StoreError, ValueError):
    """A key is not a relative, ``/``-separated path without ``.``/``..`` segments."""


class ObjectNotFoundError(StoreError, KeyError):
    """No object under that key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "object not found"


class ObjectExistsError(StoreError):
    """``put_if_absent`` found the key already taken."""


class PreconditionFailedError(StoreError):
    """``put_if_match`` found the object changed since it was read."""


class BucketNotFoundError(StoreError):
    """The S3 bucket does not exist (create it first)."""


class StoreCredentialsError(StoreError):
    """No S3 credentials, or the server refused them."""


class StoreConnectionError(StoreError):
    """The store's endpoint cannot be reached."""
