"""Base of every response type: tolerant of new fields, strict on the ones we know."""

from __future__ import annotations

import pydantic


class BaseModel(pydantic.BaseModel):
    """Unknown fields from a newer service are kept (`model_extra`), never an error."""

    model_config = pydantic.ConfigDict(extra="allow", protected_namespaces=())
