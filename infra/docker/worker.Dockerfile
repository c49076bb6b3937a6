# SafetyLock GPU worker image: Celery worker with torch, transformers, TRL and PEFT.
# Build from the repository root:
#   docker build -f infra/docker/worker.Dockerfile -t safetylock-worker:0.1.0 .
# The PyPI torch wheel for Linux x86_64 is a CUDA build and brings its CUDA libraries
# as pinned nvidia-* wheels; the CUDA base image provides the driver-compatible runtime.

ARG CUDA_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04

# --- build stage: a venv with torch and the service extra ---
FROM ${CUDA_IMAGE} AS build
ARG TORCH_VERSION=2.13.0
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# The base image tag pins the distribution release; apt takes that release's patched packages.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Every version comes from the repository's lock (requirements.lock, the one `make test`
# installs), less its torch line: the lock pins the CPU build, this image takes the CUDA one.
COPY requirements.lock /src/requirements.lock
# torch first and pinned, in its own layer: it is large and changes rarely.
RUN grep -v '^torch==' requirements.lock > constraints.txt \
    && pip install --no-cache-dir -c constraints.txt "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md /src/
COPY sdk /src/sdk
COPY service /src/service
COPY lock_registry /src/lock_registry
COPY safetylock /src/safetylock
RUN pip install --no-cache-dir -c constraints.txt "torch==${TORCH_VERSION}" ".[service]"

# --- runtime stage: python and the venv only, unprivileged ---
FROM ${CUDA_IMAGE} AS runtime
LABEL org.opencontainers.image.title="safetylock-worker" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 safetylock \
    && useradd --system --uid 10001 --gid safetylock --home-dir /home/safetylock \
       --create-home --shell /usr/sbin/nologin safetylock
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/home/safetylock/.cache/huggingface
USER 10001:10001
WORKDIR /home/safetylock
# Celery's warm shutdown on SIGTERM lets the running stage finish its checkpoint.
STOPSIGNAL SIGTERM
CMD ["safetylock", "worker", "--queues", "gpu", "--concurrency", "1"]
