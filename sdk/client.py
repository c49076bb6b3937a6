"""`Client` and `AsyncClient`: the entry points of the SDK.

    from safetylock import Client
    client = Client()                      # SAFETYLOCK_BASE_URL, SAFETYLOCK_API_KEY
    f = client.files.upload("train.jsonl")
    job = client.jobs.create(model="demo-chat", training_file=f.id)
    job = client.jobs.wait(job.id)
    print(client.jobs.report(job.id).decision)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import pydantic

from sdk import _constants as C
from sdk._base_client import AsyncAPIClient, FinalRequestOptions, SyncAPIClient
from sdk.resources.files import AsyncFiles, Files
from sdk.resources.jobs import AsyncJobs, Jobs
from sdk.resources.models import AsyncModels, Models

T = TypeVar("T", bound=pydantic.BaseModel)


def _settings(base_url: str | None, api_key: str | None) -> dict[str, str]:
    return {
        "base_url": base_url or os.environ.get("SAFETYLOCK_BASE_URL") or C.DEFAULT_BASE_URL,
        "api_key": api_key or os.environ.get("SAFETYLOCK_API_KEY", ""),
    }


class Client(SyncAPIClient):
    """Synchronous client. `http_client` lets you pass your own `httpx.Client`
    (proxies, or an in-process app such as the embedded service)."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = C.DEFAULT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ):
        super().__init__(http_client=http_client, timeout=timeout, max_retries=max_retries,
                         default_headers=default_headers, **_settings(base_url, api_key))

    @cached_property
    def files(self) -> Files:
        return Files(self)

    @cached_property
    def jobs(self) -> Jobs:
        return Jobs(self)

    @cached_property
    def fine_tuning(self) -> _FineTuning:
        """`client.fine_tuning.jobs` is `client.jobs`, for openai-python habits."""
        return _FineTuning(self.jobs)

    @cached_property
    def models(self) -> Models:
        return Models(self)

    def with_options(self, **overrides: Any) -> Client:
        """A copy with some settings changed (e.g. `max_retries=0`), sharing the connection."""
        settings = {"base_url": str(self.base_url), "api_key": self.api_key,
                    "timeout": self.timeout, "max_retries": self.max_retries,
                    "default_headers": self._default_headers, "http_client": self._http}
        copy = Client(**{**settings, **overrides})
        copy._owns_http = False
        return copy

    def _request(self, opts: FinalRequestOptions, cast: type[T] | None = None) -> Any:
        return self.request(opts, cast)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncClient(AsyncAPIClient):
    """The same surface as `Client`, with `await`."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = C.DEFAULT_TIMEOUT,
        max_retries: int = C.DEFAULT_MAX_RETRIES,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ):
        super().__init__(http_client=http_client, timeout=timeout, max_retries=max_retries,
                         default_headers=default_headers, **_settings(base_url, api_key))

    @cached_property
    def files(self) -> AsyncFiles:
        return AsyncFiles(self)

    @cached_property
    def jobs(self) -> AsyncJobs:
        return AsyncJobs(self)

    @cached_property
    def fine_tuning(self) -> _FineTuning:
        return _FineTuning(self.jobs)

    @cached_property
    def models(self) -> AsyncModels:
        return AsyncModels(self)

    def with_options(self, **overrides: Any) -> AsyncClient:
        """A copy with some settings changed (e.g. `max_retries=0`), sharing the connection."""
        settings = {"base_url": str(self.base_url), "api_key": self.api_key,
                    "timeout": self.timeout, "max_retries": self.max_retries,
                    "default_headers": self._default_headers, "http_client": self._http}
        copy = AsyncClient(**{**settings, **overrides})
        copy._owns_http = False
        return copy

    async def _request(self, opts: FinalRequestOptions, cast: type[T] | None = None) -> Any:
        return await self.request(opts, cast)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class _FineTuning:
    def __init__(self, jobs: Jobs | AsyncJobs):
        self.jobs = jobs
