"""A reference teacher on loopback that records every request body it reads."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class RecordingTeacher:
    """The reference teacher, keeping every request body it reads (teacher.reference.server has no
    recording hook, so its handler is subclassed; the server's own code answers)."""

    def __init__(self) -> None:
        from teacher.reference.server import _Handler, _State

        bodies = self.bodies = []

        class Handler(_Handler):
            def _body(self) -> bytes:
                raw = super()._body()
                bodies.append(raw)
                return raw

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = _State(None, 0.0)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
