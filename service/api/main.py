"""The FastAPI application: combines the routers, error handlers and middleware."""

from __future__ import annotations

from fastapi import FastAPI

from service.api import errors, middleware
from service.api.routes import admin, files, health, jobs, models
from service.context import ServiceContext
from service.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None, context: ServiceContext | None = None, *, resume: bool = True
) -> FastAPI:
    """An app on `context` (or a new one from `settings`, else from the environment).

    In embedded mode the app runs the workflow in a background thread, and on start it
    resumes the jobs an earlier process left unfinished (unless `resume=False`).
    """
    app = FastAPI(title="SafetyLock job service", version="0.1.0")
    app.state.context = context or ServiceContext(settings or get_settings())
    errors.install(app)
    middleware.install(app)
    for module in (health, files, jobs, models, admin):
        app.include_router(module.router)
    if app.state.context.settings.embedded and resume:
        app.state.context.dispatcher.resume_pending()
    return app
