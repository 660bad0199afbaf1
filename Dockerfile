# Execution gateway image. Minimal for now; the deployment issue completes hardening.
FROM python:3.11.7-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8080 \
    GUNICORN_WORKERS=2 \
    GUNICORN_THREADS=8

WORKDIR /app
# Dependencies first, so code changes do not invalidate the dependency layer.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY backend ./backend
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway
USER 10001

# Cloud Run sends SIGKILL 10 s after SIGTERM: the graceful timeout must fit inside.
CMD exec gunicorn --bind "0.0.0.0:${PORT}" --workers "${GUNICORN_WORKERS}" \
    --threads "${GUNICORN_THREADS}" --timeout 0 --graceful-timeout 8 --no-control-socket \
    'backend.services.execution_service.app:create_app()'
