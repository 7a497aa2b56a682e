"""gunicorn settings for the frontend, from the environment, checked before gunicorn binds its port."""

import signal
import sys
import threading

from frontend.settings import FrontendSettings, ServerSettings
from qcompute import logs
from qcompute.settings import ConfigError

# gunicorn's master runs this file before it binds the port; each worker builds the app later. Every
# setting is checked here, so a misconfigured frontend stops with one line naming the variable and
# never accepts a connection (a rollout or the proxy would see one that accepts and then resets).
try:
    _app = FrontendSettings.from_env()
    _server = ServerSettings.from_env()
except ConfigError as error:
    sys.exit(f"frontend: configuration error: {error}")

wsgi_app = "frontend.app:create_app()"
bind = _server.bind
workers = _server.workers
worker_class = "gthread"
threads = _server.threads
graceful_timeout = _server.graceful_timeout
timeout = 60
keepalive = 5
# Access lines go through structlog (see qcompute.logs): their fields come from gunicorn's atoms.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s'
logconfig_dict = logs.dict_config("frontend", _app.log_level, _app.log_format)
# gunicorn's runtime control socket is not used; unneeded, it is only one more thing to secure
# (and on a read-only root it fails to start).
control_socket_disable = True
# Containers have no writable /tmp by default when read-only; /dev/shm is always memory.
worker_tmp_dir = str(_app.lock_dir)


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
