"""gunicorn settings for the frontend; process and thread counts come from the environment."""

import os
import signal
import threading

from qcompute import logs

wsgi_app = "frontend.app:create_app()"
bind = os.environ.get("BIND", "0.0.0.0:8080")
workers = int(os.environ.get("WEB_WORKERS", "2"))
# Threads, because a request mostly waits for its reply; each waiting request holds one.
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))
# Longer than the reply wait (REPLY_WAIT_SECONDS, 10 s by default), so requests in flight finish
# on SIGTERM; compose's stop grace period is longer still.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "15"))
timeout = 60
keepalive = 5
# Access lines go through structlog (see qcompute.logs): their fields come from gunicorn's atoms.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s'
logconfig_dict = logs.dict_config(
    "frontend", os.environ.get("LOG_LEVEL", "INFO").upper(), os.environ.get("LOG_FORMAT", "auto")
)
# gunicorn's runtime control socket is not used; unneeded, it is only one more thing to secure
# (and on a read-only root it fails to start).
control_socket_disable = True
# Containers have no writable /tmp by default when read-only; /dev/shm is always memory.
worker_tmp_dir = os.environ.get("WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 - gunicorn heartbeat files


def post_worker_init(worker):
    """On SIGTERM, requests waiting for a reply answer at once with their id (202), before gunicorn's
    graceful timeout could cut them off; then gunicorn's own handler stops the worker as usual."""
    channel = getattr(worker.wsgi, "extensions", {}).get("replies")
    stop = signal.getsignal(signal.SIGTERM)
    if channel is None or not callable(stop):
        return

    def drain_then_stop(signum, frame):
        # Not in the handler itself: it may interrupt a thread holding the channel's lock.
        threading.Thread(target=channel.drain, name="drain", daemon=True).start()
        stop(signum, frame)

    signal.signal(signal.SIGTERM, drain_then_stop)


def worker_exit(server, worker):
    """Delete this process's reply queue on a clean exit (the sweep catches unclean ones)."""
    app = getattr(worker, "wsgi", None)
    channel = getattr(app, "extensions", {}).get("replies")
    if channel is not None:
        channel.close()
