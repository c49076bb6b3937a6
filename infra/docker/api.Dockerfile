# SafetyLock API image: FastAPI + the Celery client, no torch.
# The API enqueues pipeline tasks by name (send_task), so it never imports the ML stack.
# Build from the repository root:
#   docker build -f infra/docker/api.Dockerfile -t safetylock-api:0.1.0 .

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# --- build stage: a venv with the package and the API's dependencies only ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.lock /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY sdk /src/sdk
COPY service /src/service
COPY lock_registry /src/lock_registry
COPY safetylock /src/safetylock
# Non-editable install of the `api` extra; every version comes from the repository's lock
# (requirements.lock, the one `make test` installs; torch is in it but the API never asks for it).
RUN pip install --no-cache-dir -c requirements.lock ".[api]" \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)"

# --- runtime stage: the venv on a clean slim image, unprivileged ---
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="safetylock-api" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 safetylock \
    && useradd --system --uid 10001 --gid safetylock --home-dir /home/safetylock \
       --create-home --shell /usr/sbin/nologin safetylock
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/safetylock
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["safetylock", "serve", "--host", "0.0.0.0", "--port", "8000"]
