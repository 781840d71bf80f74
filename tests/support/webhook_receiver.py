"""A real local HTTP receiver for webhook deliveries (on loopback), as a user would
run one: it verifies each signature and records what came."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from worker.webhooks import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify

SECRET = "webhook-test-secret"


class Receiver:
    """Records each delivery, verifies its signature, and answers 500 to the first
    `failures` of them."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def of(self, job_id: str) -> list[dict]:
        return [d for d in self.deliveries if d["job_id"] == job_id]

    def __init__(self, failures: int = 0):
        self.deliveries: list[dict] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append({
                    "at": time.monotonic(), "body": body, "path": self.path,
                    "job_id": self.headers.get("Resq-Job-Id"),
                    "delivery_id": self.headers.get(DELIVERY_HEADER),
                    "event": self.headers.get(EVENT_HEADER),
                    "verified": verify(SECRET.encode(), self.headers.get(SIGNATURE_HEADER, ""),
                                       body),
                    "tampered_fails": not verify(SECRET.encode(),
                                                 self.headers.get(SIGNATURE_HEADER, ""),
                                                 body + b" "),
                })
                status = 500 if len(receiver.deliveries) <= receiver.failures else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


