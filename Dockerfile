# Execution gateway image: one gunicorn process serving the Flask app factory.
# Runs unchanged on Cloud Run (k8s/cloudrun/service.yaml) and GKE (k8s/deployment.yaml).
#
# Pinned to a patch release, never `latest`; cloudbuild.yaml runs the tests on the same
# release. Pin the digest too (python:3.11.14-slim-bookworm@sha256:...) once it is reviewed.
FROM python:3.11.14-slim-bookworm

# PYTHONUNBUFFERED: every JSON log line reaches Cloud Logging at once, even before a crash.
# PYTHONDONTWRITEBYTECODE: nothing tries to write .pyc files on a read-only root filesystem.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8080

WORKDIR /app

# Dependencies first, so a code change does not invalidate the dependency layer.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# A fixed numeric UID/GID, so Kubernetes can check runAsNonRoot/runAsUser against the image.
RUN groupadd --gid 10001 gateway \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway

# Owned by root and not writable by the gateway user: the code cannot be changed at run time.
COPY backend ./backend

USER 10001:10001
EXPOSE 8080

# No HEALTHCHECK: Cloud Run and Kubernetes ignore it and probe /healthz and /readyz themselves,
# and the slim image has no HTTP client to run one with.
#
# `exec` replaces the shell, so gunicorn is PID 1 and receives SIGTERM itself.
# - --config ...gunicorn_conf: its post_worker_init hook makes a worker start draining on
#   SIGTERM (new intents get 503 + Retry-After) while in-flight requests finish.
# - --timeout 0: no worker timeout (Google's Cloud Run recipe); request time is bounded by the
#   platform and by the gateway's own broker and I/O timeouts.
# - --graceful-timeout: Cloud Run sends SIGKILL 10 s after SIGTERM, so the default 8 fits with a
#   margin. GKE sets GUNICORN_GRACEFUL_TIMEOUT below terminationGracePeriodSeconds.
# - --no-control-socket: gunicorn 27 otherwise creates ~/.gunicorn/gunicorn.ctl, which fails on
#   a read-only root filesystem (and this user has no home directory).
# - --worker-tmp-dir /tmp: the worker heartbeat files live in /tmp, an emptyDir on GKE and the
#   in-memory filesystem on Cloud Run.
# - ${VAR:-default}: an unset or empty variable falls back to the default.
CMD ["/bin/sh", "-c", "exec gunicorn --config python:backend.services.execution_service.gunicorn_conf --bind \"0.0.0.0:${PORT:-8080}\" --workers \"${GUNICORN_WORKERS:-2}\" --threads \"${GUNICORN_THREADS:-8}\" --timeout 0 --graceful-timeout \"${GUNICORN_GRACEFUL_TIMEOUT:-8}\" --no-control-socket --worker-tmp-dir /tmp 'backend.services.execution_service.app:create_app()'"]
