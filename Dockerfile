# syntax=docker/dockerfile:1
# One image, one entry point: `qorch operator`, `qorch qpu-agent`, `qorch telemetry-sidecar`.
#   docker build -t qorch:dev .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of qorch and of every dependency; the final stage installs them offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="qorch" \
      org.opencontainers.image.description="Kubernetes operator for distributed quantum computing" \
      org.opencontainers.image.licenses="Apache-2.0"
# HOME in /tmp: the root filesystem is read-only in the pods, /tmp is an emptyDir.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# Exactly the wheels resolved in the build stage (--no-index): nothing is fetched twice.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels qorch \
    && groupadd --system --gid 10001 qorch \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin qorch
# Numeric, so that runAsNonRoot can verify it without resolving names.
USER 10001:10001
WORKDIR /tmp
# 8080 QPU agent channel, 8081 operator liveness, 9090 operator metrics.
EXPOSE 8080 8081 9090
ENTRYPOINT ["qorch"]
CMD ["--help"]
