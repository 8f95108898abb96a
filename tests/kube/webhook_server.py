"""A small HTTPS admission webhook for the admission tests, with trustme certificates."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme

Review = dict[str, Any]
Answer = Callable[[Review], dict[str, Any]]


def label_patch(key: str, value: str) -> Answer:
    """A webhook that allows the object and adds a label with a JSONPatch."""

    def answer(request: Review) -> dict[str, Any]:
        labels = (request["object"].get("metadata") or {}).get("labels")
        operations = (
            [{"op": "add", "path": "/metadata/labels", "value": {}}] if labels is None else []
        )
        operations.append({"op": "add", "path": f"/metadata/labels/{key}", "value": value})
        patch = base64.b64encode(json.dumps(operations).encode()).decode()
        return {"allowed": True, "patchType": "JSONPatch", "patch": patch, "warnings": ["labelled"]}

    return answer


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a caller that gave up waiting (the timeout test) breaks the connection."""


@dataclass
class Webhook:
    url: str
    ca_bundle: str
    answer: Answer
    delay_s: float = 0.0
    reviews: list[Review] = field(default_factory=list)


@contextmanager
def webhook_server(answer: Answer) -> Iterator[Webhook]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    hook: Webhook

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hook.reviews.append(review)
            time.sleep(hook.delay_s)
            response = {"uid": review["request"]["uid"], **hook.answer(review["request"])}
            body = json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": response,
                }
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on what the webhook received instead."""

    server = _Server(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
    hook = Webhook(f"https://127.0.0.1:{server.server_address[1]}/mutate", bundle, answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
