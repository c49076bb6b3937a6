"""SafetyLock customer SDK: `Client`, `AsyncClient`, typed responses, errors, validation."""

from sdk.validation import LineError, ValidationReport, validate_training_file

__all__ = ["LineError", "ValidationReport", "validate_training_file"]
