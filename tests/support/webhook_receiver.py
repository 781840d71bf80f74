"""A real local HTTP receiver for webhook deliveries (on loopback), as a user would
run one: it verifies each delivery with the `standardwebhooks` library, as any
Standard Webhooks receiver does, and records what came."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The key deliveries are signed with in the tests (`whsec_` and 32 bytes of base64),
# and an older one a rotation would keep accepting for a while.
SECRET = "whsec_cmVzcS10ZXN0LXdlYmhvb2stc2lnbmluZy1rZXkh"
OLD_SECRET = "whsec_b2xkLXJlc3EtdGVzdC13ZWJob29rLWtleS0wMDAw"
# What a test gives the worker and the web tier: webhooks to this machine over http.
WEBHOOK_ENV = {"WEBHOOK_SECRET": SECRET, "WEBHOOK_HTTP_NETWORKS": "127.0.0.1/32"}


def verified(secret: str, body: bytes, headers: dict) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


class Receiver:
    """Records each delivery (verified with `SECRET`), and answers 500 to the first
    `failures` of them."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def of(self, job_id: str) -> list[dict]:
        return [d for d in self.deliveries if d["job_id"] == job_id]

    def __init__(self, failures: int = 0, secret: str = SECRET):
        self.deliveries: list[dict] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers.items())
                envelope = json.loads(body)
                receiver.deliveries.append({
                    "at": time.monotonic(), "body": body, "path": self.path,
                    "headers": headers, "envelope": envelope, "job": envelope["data"],
                    "job_id": envelope["data"]["id"],
                    "delivery_id": self.headers.get("webhook-id"),
                    "event": envelope["type"].removeprefix("job."),
                    "verified": verified(secret, body, headers),
                    "tampered_fails": not verified(secret, body + b" ", headers),
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
