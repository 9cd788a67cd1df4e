"""The ranking API served with the standard library's HTTP server (the ``server`` extra).

The same routes as ``serving serve``: ``GET /healthz`` and ``POST /v1/rank`` with
``{"logits": [...], "k": K}``. Importing this module needs the serving package.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import serving_runtime
from serving.cli import rank

from . import __version__


def device() -> str:
    return serving_runtime.device()


class Handler(BaseHTTPRequestHandler):
    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        if self.path == "/healthz":
            self._answer(200, {"status": "ok", "version": __version__, "device": device()})
        else:
            self._answer(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/v1/rank":
            self._answer(404, {"error": f"no route {self.path}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            logits = [float(x) for x in body["logits"]]
            k = int(body.get("k", 1))
            if k < 0:
                raise ValueError(f"k must not be negative, got {k}")
        except (ValueError, TypeError, KeyError) as exc:
            self._answer(400, {"error": f"bad request: {exc}"})
            return
        ranked = rank(logits, k)
        self._answer(200, {"top_k": [{"index": i, "logit": lg, "probability": p} for i, lg, p in ranked]})

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (keep test output quiet)
        pass


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), Handler)


def serve(host: str, port: int) -> None:
    with make_server(host, port) as httpd:
        print(f"serving on http://{host}:{httpd.server_address[1]}")
        httpd.serve_forever()
