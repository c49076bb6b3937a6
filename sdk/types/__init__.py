"""Typed responses of the SafetyLock API."""

from sdk.types.event import JobEvent
from sdk.types.file import FileDeleted, FileObject
from sdk.types.job import (
    FineTuningJob,
    Hyperparameters,
    JobError,
    JobProgress,
    JobStatus,
    LockRef,
    Method,
    Stage,
)
from sdk.types.model import DownloadFile, Model, ModelDownload, ModelLock
from sdk.types.report import (
    AlphaPoint,
    AnswerSample,
    CategoryEval,
    Eval,
    LockTransfer,
    Repair,
    SafetyReport,
    Selection,
    TaskVeto,
)

__all__ = [
    "AlphaPoint", "AnswerSample", "CategoryEval", "DownloadFile", "Eval", "FileDeleted", "FileObject", "FineTuningJob",
    "Hyperparameters", "JobError", "JobEvent", "JobProgress", "JobStatus", "LockRef", "LockTransfer", "Method",
    "Model", "ModelDownload", "ModelLock", "Repair", "SafetyReport", "Selection", "Stage", "TaskVeto",
]
