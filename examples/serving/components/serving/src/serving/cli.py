"""The ``serving`` command.

``serving rank LOGIT... [--k K] [--scores]`` prints the indices of the ``K``
highest logits, best first, using ``serving_runtime.top_k``.
``serving serve`` starts a tiny HTTP API; it needs the ``server`` extra.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__

SERVER_EXTRA_MESSAGE = "the 'serve' command needs the server extra: pip install 'serving[server]'"


def rank(logits: Sequence[float], k: int) -> list[tuple[int, float, float]]:
    """The ``k`` best ``(index, logit, probability)`` triples, best first."""
    import serving_runtime

    probs = serving_runtime.softmax(list(logits))
    return [(i, logit, probs[i]) for i, logit in serving_runtime.top_k(list(logits), k)]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serving", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"serving {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p_rank = sub.add_parser("rank", help="print the indices of the top-k logits")
    p_rank.add_argument("logits", nargs="+", type=float, metavar="LOGIT")
    p_rank.add_argument("--k", type=_positive_int, default=1, help="how many (default 1)")
    p_rank.add_argument("--scores", action="store_true", help="also print each logit and its probability")

    p_serve = sub.add_parser("serve", help="serve the ranking API over HTTP")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--port", type=int, default=8080)
    return parser


def cmd_rank(args: argparse.Namespace) -> int:
    for index, logit, prob in rank(args.logits, args.k):
        if args.scores:
            print(f"{index}\t{logit:g}\t{prob:.6f}")
        else:
            print(index)
    return 0


def make_app():
    """The aiohttp application; raises ImportError without the server extra."""
    import serving_runtime
    from aiohttp import web

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__, "device": serving_runtime.device()})

    async def rank_handler(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            logits = [float(x) for x in body["logits"]]
            k = int(body.get("k", 1))
            if k < 0:
                raise ValueError(f"k must not be negative, got {k}")
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        ranked = rank(logits, k)
        return web.json_response({"top_k": [{"index": i, "logit": lg, "probability": p} for i, lg, p in ranked]})

    app = web.Application()
    app.router.add_get("/healthz", health)
    app.router.add_post("/v1/rank", rank_handler)
    return app


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from aiohttp import web
    except ImportError:
        print(SERVER_EXTRA_MESSAGE, file=sys.stderr)
        return 1
    web.run_app(make_app(), host=args.host, port=args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "rank":
        return cmd_rank(args)
    return cmd_serve(args)


if __name__ == "__main__":
    sys.exit(main())
