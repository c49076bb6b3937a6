"""Client defaults: timeouts and the retry schedule."""

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
"""Seconds for one HTTP request (connect, read and write each)."""
DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
"""A server's Retry-After above this is ignored in favour of our own backoff."""
RETRY_STATUSES = frozenset({408, 409, 429})
"""Besides every 5xx: timeout, conflict (e.g. a request with the same idempotency key
still in flight), rate limit."""
