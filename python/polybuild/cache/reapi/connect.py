"""From `[remote]` config to a REAPI cache: the URL's target, the headers' values, the client.

Kept apart from client.py so that checking a URL or a header name imports no gRPC.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybuild.cache.reapi.cache import ReapiCache

SCHEMES = ("grpc://", "grpcs://")
# gRPC metadata keys: lower-case letters, digits and -_. ; `grpc-` is the protocol's own, `-bin` binary values.
_HEADER = re.compile(r"[a-z0-9_.-]+")


def is_reapi_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def target(url: str) -> tuple[str, bool]:
    """(host:port, TLS) of a grpc:// or grpcs:// URL; ValueError saying what is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not go in the URL: use [remote] headers (values from the environment)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("a REAPI URL is only grpc[s]://host:port (the instance is [remote] instance-name)")
    tls = parts.scheme == "grpcs"
    port = parts.port or (443 if tls else None)  # ValueError for a port that is not a number or out of range
    if not parts.hostname or port is None:
        raise ValueError("the host and port are missing")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tls


_ENV_REFERENCE = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")


def header_problem(name: str, value: str) -> str | None:
    """What is wrong with a `[remote] headers` entry (never quoting the value: it could be a secret)."""
    if not _HEADER.fullmatch(name):
        return "a gRPC header name is lower-case letters, digits, '-', '_' and '.'"
    if name.startswith("grpc-") or name.endswith("-bin"):
        return "names starting with 'grpc-' or ending in '-bin' are reserved by gRPC"
    if not _ENV_REFERENCE.fullmatch(value):
        return "the value must be \"env:NAME\": header values are read from the environment, never from config"
    return None


def header_values(headers: dict[str, str], token_env: str | None = None) -> dict[str, str]:
    """name -> value read from the environment (`env:NAME`); unset or empty variables send nothing. `token-env`
    is a bearer token in `authorization`, unless a header sets that itself."""
    values = {name: os.environ.get(ref.removeprefix("env:"), "") for name, ref in headers.items()}
    token = os.environ.get(token_env, "") if token_env else ""
    if token and "authorization" not in headers:
        values["authorization"] = f"Bearer {token}"
    return {name: value for name, value in values.items() if value}


def open_cache(url: str, *, instance: str, headers: dict[str, str], token_env: str | None, upload: bool,
               timeout: float, retries: int) -> ReapiCache:
    """The cache for a checked URL (see `target`); no call is made until the first lookup."""
    from polybuild.cache.reapi.cache import ReapiCache
    from polybuild.cache.reapi.client import ReapiClient

    address, tls = target(url)
    client = ReapiClient(address, tls=tls, instance=instance, headers=header_values(headers, token_env),
                         timeout=timeout, retries=retries)
    return ReapiCache(client, url, upload=upload)
