"""A real HTTP server on loopback that serves fixed responses by path, for URL
submissions."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def serve(routes: dict[str, tuple[int, str, bytes]], host: str = "127.0.0.1", port: int = 0):
    """`routes` maps a path to (status, content type, body). Yields the base URL
    and the list of paths requested. `host` must be a loopback address."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            status, content_type, body = routes.get(self.path, (404, "text/plain", b"missing"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status in (301, 302):
                self.send_header("Location", body.decode())
            self.end_headers()
            if status not in (301, 302):
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    assert host.startswith("127."), "test servers listen on loopback only"
    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


class Trap:
    """A TCP listener on a loopback address that must never be reached: it accepts
    and records every connection, and answers nothing."""

    def __init__(self, host: str, port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(peer)
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
