"""Serve a WSGI app with waitress in a thread of this process (browser tests, screenshots)."""

from __future__ import annotations

import threading
from contextlib import contextmanager


@contextmanager
def serving(app, threads: int = 4):
    """Serve `app` on a free local port in a thread; yield the base URL; stop cleanly."""
    from waitress import create_server

    srv = create_server(app, host="127.0.0.1", port=0, threads=threads)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            srv.asyncore.loop(timeout=0.05, map=srv._map, count=1)

    t = threading.Thread(target=loop, daemon=True, name="morphocluster-serving")
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        stop.set()
        t.join(5)
        srv.task_dispatcher.shutdown()
        srv.close()
