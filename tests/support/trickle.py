"""A loopback HTTP server that answers one byte at a time, as a slow-loris server
does: `phase="headers"` trickles the status line and headers, `phase="body"` sends
the headers at once and then trickles the body. It records how many bytes it sent
and whether the client hung up before it had sent them all. Each connection
stops by itself after `total` bytes (so at most `total * interval` seconds)."""

from __future__ import annotations

import socket
import threading
import time


class TrickleServer:
    def __init__(self, phase: str, *, total: int = 300, interval: float = 0.1):
        self.phase = phase
        self.total = total
        self.interval = interval
        self.sent = 0
        self.cut_at: float | None = None  # when the client hung up, if it did
        self.started_at: float | None = None
        self.done = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/slow.jpg"
        threading.Thread(target=self._serve, daemon=True).start()

    def _payload(self) -> bytes:
        body = b"\xff" * self.total
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n")
        if self.phase == "headers":  # headers that never end, one byte at a time
            return head + b"X-Padding: " + b"a" * self.total
        return head + b"\r\n" + body

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)  # the request
            except OSError:
                pass
            payload = self._payload()
            self.started_at = time.monotonic()
            quick = len(payload) - self.total if self.phase == "body" else 0
            try:
                if quick:
                    conn.sendall(payload[:quick])
                for i in range(quick, len(payload)):
                    conn.sendall(payload[i:i + 1])
                    self.sent += 1
                    time.sleep(self.interval)
            except OSError:
                self.cut_at = time.monotonic()
        self.done.set()

    def close(self) -> None:
        self.sock.close()
