"""SafetyLock: the customers' import, `from safetylock import Client`.

The SDK's code lives in `sdk/` (which stays importable); this package re-exports its
public API, the same objects: `Client`, `AsyncClient`, the errors, and
`validate_training_file`. Response types: `safetylock.types`.
"""

from sdk import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    InternalServerError,
    InvalidTrainingFileError,
    JobWaitTimeoutError,
    LineError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SafetyLockError,
    UnprocessableEntityError,
    ValidationReport,
    validate_training_file,
)

__all__ = [
    "APIConnectionError", "APIStatusError", "APITimeoutError", "AsyncClient",
    "AuthenticationError", "BadRequestError", "Client", "ConflictError", "InternalServerError",
    "InvalidTrainingFileError", "JobWaitTimeoutError", "LineError", "NotFoundError",
    "PermissionDeniedError", "RateLimitError", "SafetyLockError", "UnprocessableEntityError",
    "ValidationReport", "validate_training_file",
]
