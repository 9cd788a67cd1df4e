"""The ``serving-client`` command.

``serving-client rank URL LOGIT... [--k K]`` asks a serving API for the top-k indices;
``serving-client health URL`` prints its health. ``serving-client serve`` runs the API
itself; it needs the ``server`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from . import __version__

SERVER_EXTRA_MESSAGE = "the 'serve' command needs the server extra: pip install 'serving-client[server]'"


def call(url: str, path: str, body: dict | None = None, timeout: float = 10.0) -> dict:
    """GET (or POST `body` as JSON to) `url` + `path`; the decoded JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serving-client", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"serving-client {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_rank = sub.add_parser("rank", help="ask a server for the indices of the top-k logits")
    p_rank.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    p_rank.add_argument("logits", nargs="+", type=float, metavar="LOGIT")
    p_rank.add_argument("--k", type=_positive_int, default=1, help="how many (default 1)")

    p_health = sub.add_parser("health", help="print a server's health")
    p_health.add_argument("url")

    p_serve = sub.add_parser("serve", help="serve the ranking API (needs the server extra)")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8080)
    p_serve.add_argument("--check", action="store_true", help="check that the server can start, then exit")
    return parser


def cmd_rank(args: argparse.Namespace) -> int:
    answer = call(args.url, "/v1/rank", {"logits": args.logits, "k": args.k})
    for entry in answer["top_k"]:
        print(entry["index"])
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    print(json.dumps(call(args.url, "/healthz"), sort_keys=True))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from . import server
    except ImportError as exc:
        print(f"{SERVER_EXTRA_MESSAGE} ({exc})", file=sys.stderr)
        return 1
    if args.check:
        print(f"serving-client serve: ready (device {server.device()})")
        return 0
    server.serve(args.host, args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"rank": cmd_rank, "health": cmd_health, "serve": cmd_serve}[args.command](args)
    except (urllib.error.URLError, OSError) as exc:
        print(f"serving-client: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
