# observer's container image.
#
#   docker build -t observer:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/observer:0.1.0 --push .
#
# The builder stage installs the dependencies pinned in requirements.lock, each file
# checked against the hash the lock gives it, into a virtual environment without pip,
# then observer itself without resolving anything again: an image built after a
# release of any dependency has the same versions as CI. The runtime stage copies
# that environment and nothing else: no compiler, no pip, no sources.
# It runs as an unprivileged numeric user, writes nothing (a read-only root
# filesystem with an empty /tmp mounted is enough), and stops cleanly on SIGTERM:
# the entrypoint is the service itself, in exec form, so it is PID 1 and receives the
# signal directly; it stops accepting connections, finishes requests in flight for
# up to SHUTDOWN_TIMEOUT seconds and exits 0.
#
# Both stages use the same base image, pinned to a patch release. For fully
# repeatable builds pin its digest as well (FROM python:3.12.12-slim-trixie@sha256:...).

FROM python:3.12.12-slim-trixie AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY observer ./observer

# The bucket extra (obstore) is in the lock and the image: STATE_URL=gs://, s3:// or az:// needs it.
RUN python -m venv --without-pip /opt/venv \
 && pip --python /opt/venv/bin/python install --no-cache-dir --require-hashes \
        --only-binary :all: -r requirements.lock \
 && pip --python /opt/venv/bin/python install --no-cache-dir --no-deps .


FROM python:3.12.12-slim-trixie

LABEL org.opencontainers.image.title="observer" \
      org.opencontainers.image.description="DORA metrics from forges, pagers and CI pipelines, exported for Prometheus." \
      org.opencontainers.image.licenses="Apache-2.0"

# A named entry for the numeric user, so tools that look the user up find it.
# The same ids are used by every example (runAsUser, ECS "user", the smoke test).
RUN groupadd --system --gid 65532 observer \
 && useradd --system --uid 65532 --gid 65532 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin observer

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080

USER 65532:65532
EXPOSE 8080

# For `docker run` and Compose; Kubernetes, Cloud Run, ECS and Container Apps use
# their own probes (see examples/).
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/venv/bin/observer"]
