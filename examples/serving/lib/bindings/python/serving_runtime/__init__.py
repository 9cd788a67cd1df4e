"""Inference runtime helpers implemented in Rust (see ``lib/runtime``)."""

from ._native import (
    __version__,
    apply_temperature,
    argmax,
    device,
    greedy_decode,
    log_softmax,
    softmax,
    top_k,
)

__all__ = [
    "__version__",
    "apply_temperature",
    "argmax",
    "device",
    "greedy_decode",
    "log_softmax",
    "softmax",
    "top_k",
]
