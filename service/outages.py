"""The errors that mean a backend (the object store, Redis) cannot be reached right now:
the API answers them 503 with Retry-After, a worker waits and runs the job again."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from lock_registry.store.errors import StoreConnectionError

UNAVAILABLE = (StoreConnectionError, RedisConnectionError, RedisTimeoutError)
