"""Serving a bench's app with gunicorn on 127.0.0.1 in a process of its own. Imported by the
bench scripts that run beside it (``python bench/x.py``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(port: int, seconds: float = 60) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def serve(build: Callable[[], object], port: int, workers: int) -> None:
    """gunicorn with ``workers`` sync workers on 127.0.0.1:``port``; each worker calls
    ``build`` for its app. Returns when gunicorn stops (on SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            for name, value in {"bind": f"127.0.0.1:{port}", "workers": workers,
                                "worker_class": "sync", "timeout": 120, "backlog": 128,
                                "accesslog": None, "loglevel": "warning"}.items():
                self.cfg.set(name, value)

        def load(self):
            return build()

    Server().run()
