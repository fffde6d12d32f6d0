"""An HTTP server on 127.0.0.1 for the network paths' tests (downloads, the Hub): this machine has no internet."""

from __future__ import annotations

import http.server
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


class LocalServer:
    """Serves `handler` on a free port in a daemon thread; `url` is its address plus `path`."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], path: str = ""):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
