"""The job service's HTTP API (FastAPI): `service.api.main:create_app`."""
