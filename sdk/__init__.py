"""SafetyLock customer SDK: `Client`, `AsyncClient`, typed responses, errors, validation."""

from sdk.client import AsyncClient, Client
from sdk.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    JobWaitTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SafetyLockError,
    UnprocessableEntityError,
)
from sdk.resources.files import InvalidTrainingFileError
from sdk.validation import LineError, ValidationReport, validate_training_file

__all__ = [
    "APIConnectionError", "APIStatusError", "APITimeoutError", "AsyncClient",
    "AuthenticationError", "BadRequestError", "Client", "ConflictError", "InternalServerError",
    "InvalidTrainingFileError", "JobWaitTimeoutError", "LineError", "NotFoundError",
    "PermissionDeniedError", "RateLimitError", "SafetyLockError", "UnprocessableEntityError",
    "ValidationReport", "validate_training_file",
]
