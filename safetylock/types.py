"""Typed responses of the SafetyLock API: `sdk.types` under the customers' import."""

from sdk.types import (
    AlphaPoint,
    AnswerSample,
    CategoryEval,
    DownloadFile,
    Eval,
    FileDeleted,
    FileObject,
    FineTuningJob,
    Hyperparameters,
    JobError,
    JobEvent,
    JobProgress,
    JobStatus,
    LockRef,
    LockTransfer,
    Method,
    Model,
    ModelDownload,
    ModelLock,
    Repair,
    SafetyReport,
    Selection,
    Stage,
    TaskVeto,
)

__all__ = [
    "AlphaPoint", "AnswerSample", "CategoryEval", "DownloadFile", "Eval", "FileDeleted", "FileObject", "FineTuningJob",
    "Hyperparameters", "JobError", "JobEvent", "JobProgress", "JobStatus", "LockRef", "LockTransfer", "Method",
    "Model", "ModelDownload", "ModelLock", "Repair", "SafetyReport", "Selection", "Stage", "TaskVeto",
]
