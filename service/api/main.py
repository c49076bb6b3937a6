"""The FastAPI application: combines the routers, error handlers and middleware."""

from __future__ import annotations

from fastapi import FastAPI

from service.api import errors, middleware
from service.api.routes import admin, files, health, jobs, models
from service.context import ServiceContext
from service.dispatch import Dispatcher, EmbeddedDispatcher, open_dispatcher
from service.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    context: ServiceContext | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    resume: bool = True,
) -> FastAPI:
    """An app on `context` (or a new one from `settings`, else from the environment).

    Jobs go to `dispatcher` (default: Celery in cluster mode, a background thread in
    embedded mode). An embedded app resumes on start the jobs an earlier process left
    unfinished (unless `resume=False`).
    """
    app = FastAPI(title="SafetyLock job service", version="0.1.0")
    app.state.context = context or ServiceContext(settings or get_settings())
    app.state.dispatcher = dispatcher or open_dispatcher(app.state.context)
    errors.install(app)
    middleware.install(app)
    for module in (health, files, jobs, models, admin):
        app.include_router(module.router)
    if isinstance(app.state.dispatcher, EmbeddedDispatcher) and resume:
        app.state.dispatcher.resume_pending()
    return app
