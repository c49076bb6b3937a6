"""`client.jobs`: create and follow fine-tuning jobs (`/v1/fine_tuning/jobs`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from numbers import Real
from typing import TYPE_CHECKING, Any, TypedDict

import httpx

from sdk._base_client import FinalRequestOptions
from sdk._progress import JobProgressBar
from sdk._sse import aiter_sse_data, iter_sse_data
from sdk.errors import APIConnectionError, JobWaitTimeoutError, error_for
from sdk.pagination import AsyncCursorPage, SyncCursorPage
from sdk.resources._checks import check_choice, check_limit, require_id
from sdk.types.event import JobEvent
from sdk.types.job import JOB_STATUSES, FineTuningJob, JobStatus, Method
from sdk.types.report import SafetyReport

if TYPE_CHECKING:
    from sdk.client import AsyncClient, Client

BASE = "/v1/fine_tuning/jobs"
METHODS = Method.__args__


class HyperparametersParam(TypedDict, total=False):
    """Training settings; anything left out takes the service's default."""

    n_epochs: int
    learning_rate: float
    batch_size: int
    lora_rank: int
    lora_alpha: float
    max_seq_length: int
    seed: int


# name -> (type, smallest allowed value, whether that value itself is allowed)
_HYPERPARAMETERS: dict[str, tuple[type, float, bool]] = {
    "n_epochs": (int, 1, True),
    "learning_rate": (Real, 0, False),
    "batch_size": (int, 1, True),
    "lora_rank": (int, 1, True),
    "lora_alpha": (Real, 0, False),
    "max_seq_length": (int, 1, True),
    "seed": (int, 0, True),
}


def _check_hyperparameters(hp: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if hp is None:
        return None
    if not isinstance(hp, Mapping):
        raise ValueError(  # noqa: TRY004 - a bad request argument is a ValueError throughout
            f"hyperparameters must be a mapping, got {type(hp).__name__}")
    for name, value in hp.items():
        if name not in _HYPERPARAMETERS:
            known = ", ".join(_HYPERPARAMETERS)
            raise ValueError(f"unknown hyperparameter {name!r}; known: {known}")
        kind, low, inclusive = _HYPERPARAMETERS[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            what = "an integer" if kind is int else "a number"
            raise ValueError(f"hyperparameters.{name} must be {what}, got {value!r}")  # noqa: TRY004
        if value < low or (value == low and not inclusive):
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ValueError(f"hyperparameters.{name} must be {bound}, got {value!r}")
    return dict(hp)


def _create_options(
    *, model: str, training_file: str, validation_file: str | None, method: str,
    hyperparameters: Mapping[str, Any] | None, suffix: str | None,
    gate_policy: Mapping[str, Any] | None, lock_version: int | None,
    idempotency_key: str | None,
) -> FinalRequestOptions:
    body: dict[str, Any] = {
        "model": require_id("model", model),
        "training_file": require_id("training_file", training_file),
        "method": check_choice("method", method, METHODS),
    }
    if validation_file is not None:
        body["validation_file"] = require_id("validation_file", validation_file)
    if (hp := _check_hyperparameters(hyperparameters)) is not None:
        body["hyperparameters"] = hp
    if suffix is not None:
        if not isinstance(suffix, str) or not 0 < len(suffix) <= 40 or not all(
                c.isalnum() or c in "-_" for c in suffix):
            raise ValueError(f"suffix must be 1-40 letters, digits, '-' or '_', got {suffix!r}")
        body["suffix"] = suffix
    if gate_policy is not None:
        if not isinstance(gate_policy, Mapping):
            raise ValueError("gate_policy must be a mapping of policy overrides")
        body["gate_policy"] = dict(gate_policy)
    if lock_version is not None:
        if isinstance(lock_version, bool) or not isinstance(lock_version, int) or lock_version < 1:
            raise ValueError(
                f"lock_version must be a lock version number >= 1, got {lock_version!r}")
        body["lock_version"] = lock_version
    return FinalRequestOptions("POST", BASE, json=body, idempotency_key=idempotency_key)


def _list_params(status: str | None, limit: int | None, after: str | None) -> dict[str, Any]:
    return {"status": check_choice("status", status, JOB_STATUSES),
            "limit": check_limit(limit), "after": after}


def _path(job_id: str, tail: str = "") -> str:
    return f"{BASE}/{require_id('job_id', job_id)}{tail}"


def _stream_options(job_id: str, after: str | None) -> FinalRequestOptions:
    return FinalRequestOptions("GET", _path(job_id, "/events"),
                               params={"stream": "true", "after": after},
                               headers={"Accept": "text/event-stream"})


def _report_html_options(job_id: str) -> FinalRequestOptions:
    return FinalRequestOptions("GET", _path(job_id, "/report.html"), headers={"Accept": "text/html"})


def _html(response: httpx.Response) -> str:
    if not response.is_success:
        raise error_for(response)
    return response.text


class Jobs:
    def __init__(self, client: Client):
        self._client = client

    def create(
        self, *, model: str, training_file: str, validation_file: str | None = None,
        method: Method = "lora", hyperparameters: HyperparametersParam | None = None,
        suffix: str | None = None, gate_policy: Mapping[str, Any] | None = None,
        lock_version: int | None = None, idempotency_key: str | None = None,
    ) -> FineTuningJob:
        """Start a fine-tuning job. Retries reuse one idempotency key, so at most one job starts."""
        opts = _create_options(
            model=model, training_file=training_file, validation_file=validation_file,
            method=method, hyperparameters=hyperparameters, suffix=suffix,
            gate_policy=gate_policy, lock_version=lock_version, idempotency_key=idempotency_key)
        return self._client._request(opts, FineTuningJob)

    def list(self, *, status: JobStatus | None = None, limit: int | None = None,
             after: str | None = None) -> SyncCursorPage[FineTuningJob]:
        """Your jobs, newest first; iterating the page walks all of them."""
        params = _list_params(status, limit, after)
        body = self._client._request(FinalRequestOptions("GET", BASE, params=params))
        return SyncCursorPage(body, FineTuningJob,
                              lambda cursor: self.list(status=status, limit=limit, after=cursor))

    def retrieve(self, job_id: str) -> FineTuningJob:
        return self._client._request(FinalRequestOptions("GET", _path(job_id)), FineTuningJob)

    def cancel(self, job_id: str) -> FineTuningJob:
        return self._client._request(FinalRequestOptions("POST", _path(job_id, "/cancel")),
                                     FineTuningJob)

    def events(self, job_id: str, *, limit: int | None = None,
               after: str | None = None) -> SyncCursorPage[JobEvent]:
        """The job's events, oldest first; iterating the page walks all of them."""
        path = _path(job_id, "/events")
        params = {"limit": check_limit(limit), "after": after}
        body = self._client._request(FinalRequestOptions("GET", path, params=params))
        return SyncCursorPage(body, JobEvent,
                              lambda cursor: self.events(job_id, limit=limit, after=cursor))

    def stream_events(self, job_id: str) -> Iterator[JobEvent]:
        """Events as they happen (Server-Sent Events), until the job ends."""
        require_id("job_id", job_id)
        return self._stream(job_id)

    def _stream(self, job_id: str) -> Iterator[JobEvent]:
        last_id, retries_taken = None, 0
        while True:
            response = self._client._send(_stream_options(job_id, last_id), stream=True)
            try:
                if not response.is_success:
                    response.read()
                    raise error_for(response)
                for data in iter_sse_data(response.iter_lines()):
                    event = JobEvent.model_validate(json.loads(data))
                    last_id, retries_taken = event.id, 0
                    yield event
                return
            except httpx.TransportError as exc:  # the stream broke: resume after the last event
                if retries_taken >= self._client.max_retries:
                    raise APIConnectionError(f"event stream broke: {exc}") from exc
                time.sleep(self._client._retry_delay(retries_taken, None))
                retries_taken += 1
            finally:
                response.close()

    def wait(self, job_id: str, *, timeout: float | None = None, poll_interval: float = 1.0,
             progress: bool = True) -> FineTuningJob:
        """Poll until the job is succeeded, failed or cancelled, and return it.

        Shows a progress bar (stage, step, loss, ETA) when `progress` and stderr is a
        terminal. Raises `JobWaitTimeoutError` after `timeout` seconds; the job goes on.
        """
        require_id("job_id", job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with JobProgressBar(job_id, enabled=progress) as bar:
            while True:
                job = self.retrieve(job_id)
                bar.update(job)
                if job.done:
                    return job
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobWaitTimeoutError(job_id, timeout or 0, job.status)
                pause = poll_interval if deadline is None else min(
                    poll_interval, max(0.0, deadline - time.monotonic()))
                time.sleep(pause)

    def report(self, job_id: str) -> SafetyReport:
        """The safety report of a finished job: harmful rates, alpha, utility, decision."""
        return self._client._request(FinalRequestOptions("GET", _path(job_id, "/report")),
                                     SafetyReport)

    def report_html(self, job_id: str) -> str:
        """The safety report as one self-contained HTML page: the figures, the alpha curve and
        the harmful rates per category as plots beside their tables (no script, nothing fetched)."""
        return _html(self._client._send(_report_html_options(job_id)))


class AsyncJobs:
    def __init__(self, client: AsyncClient):
        self._client = client

    async def create(
        self, *, model: str, training_file: str, validation_file: str | None = None,
        method: Method = "lora", hyperparameters: HyperparametersParam | None = None,
        suffix: str | None = None, gate_policy: Mapping[str, Any] | None = None,
        lock_version: int | None = None, idempotency_key: str | None = None,
    ) -> FineTuningJob:
        opts = _create_options(
            model=model, training_file=training_file, validation_file=validation_file,
            method=method, hyperparameters=hyperparameters, suffix=suffix,
            gate_policy=gate_policy, lock_version=lock_version, idempotency_key=idempotency_key)
        return await self._client._request(opts, FineTuningJob)

    async def list(self, *, status: JobStatus | None = None, limit: int | None = None,
                   after: str | None = None) -> AsyncCursorPage[FineTuningJob]:
        params = _list_params(status, limit, after)
        body = await self._client._request(FinalRequestOptions("GET", BASE, params=params))
        return AsyncCursorPage(body, FineTuningJob,
                               lambda cursor: self.list(status=status, limit=limit, after=cursor))

    async def retrieve(self, job_id: str) -> FineTuningJob:
        return await self._client._request(FinalRequestOptions("GET", _path(job_id)),
                                           FineTuningJob)

    async def cancel(self, job_id: str) -> FineTuningJob:
        return await self._client._request(
            FinalRequestOptions("POST", _path(job_id, "/cancel")), FineTuningJob)

    async def events(self, job_id: str, *, limit: int | None = None,
                     after: str | None = None) -> AsyncCursorPage[JobEvent]:
        path = _path(job_id, "/events")
        params = {"limit": check_limit(limit), "after": after}
        body = await self._client._request(FinalRequestOptions("GET", path, params=params))
        return AsyncCursorPage(body, JobEvent,
                               lambda cursor: self.events(job_id, limit=limit, after=cursor))

    def stream_events(self, job_id: str) -> AsyncIterator[JobEvent]:
        require_id("job_id", job_id)
        return self._stream(job_id)

    async def _stream(self, job_id: str) -> AsyncIterator[JobEvent]:
        last_id, retries_taken = None, 0
        while True:
            response = await self._client._send(_stream_options(job_id, last_id), stream=True)
            try:
                if not response.is_success:
                    await response.aread()
                    raise error_for(response)
                async for data in aiter_sse_data(response.aiter_lines()):
                    event = JobEvent.model_validate(json.loads(data))
                    last_id, retries_taken = event.id, 0
                    yield event
                return
            except httpx.TransportError as exc:
                if retries_taken >= self._client.max_retries:
                    raise APIConnectionError(f"event stream broke: {exc}") from exc
                await asyncio.sleep(self._client._retry_delay(retries_taken, None))
                retries_taken += 1
            finally:
                await response.aclose()

    async def wait(self, job_id: str, *, timeout: float | None = None,
                   poll_interval: float = 1.0, progress: bool = True) -> FineTuningJob:
        require_id("job_id", job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        with JobProgressBar(job_id, enabled=progress) as bar:
            while True:
                job = await self.retrieve(job_id)
                bar.update(job)
                if job.done:
                    return job
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobWaitTimeoutError(job_id, timeout or 0, job.status)
                pause = poll_interval if deadline is None else min(
                    poll_interval, max(0.0, deadline - time.monotonic()))
                await asyncio.sleep(pause)

    async def report(self, job_id: str) -> SafetyReport:
        return await self._client._request(
            FinalRequestOptions("GET", _path(job_id, "/report")), SafetyReport)

    async def report_html(self, job_id: str) -> str:
        return _html(await self._client._send(_report_html_options(job_id)))
