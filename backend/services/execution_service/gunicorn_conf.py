"""gunicorn settings for the service: ``gunicorn -c python:backend.services.execution_service.gunicorn_conf``.

Values come from the environment so one image serves Cloud Run and GKE. The shutdown hook is
the point: on SIGTERM a worker first starts draining (new intents get 503 + Retry-After, so
Pub/Sub redelivers them to another instance), then lets gunicorn finish the requests already
running, broker calls included, within the graceful timeout.
"""

from __future__ import annotations

import os
import signal
from typing import Any

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Google's Cloud Run recipe: no worker timeout (requests are bounded by our own timeouts).
timeout = 0
# Cloud Run sends SIGKILL 10 s after SIGTERM; GKE after terminationGracePeriodSeconds.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "8"))
# gunicorn 27 would otherwise create ~/.gunicorn/gunicorn.ctl (read-only root filesystem).
control_socket_disable = True
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/tmp")
accesslog = None  # the app logs one structured record per decision


def post_worker_init(worker: Any) -> None:
    drain = getattr(worker.wsgi, "extensions", {}).get("drain")
    if drain is None:
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        drain.begin()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
