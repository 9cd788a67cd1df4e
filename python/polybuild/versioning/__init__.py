"""One release version stamped into every manifest: conversion (convert), where it lives (places), edits (stamp)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from polybuild.workspace import Workspace


def grouped(ws: Workspace) -> bool:
    """Whether `[versions]` sets any group: without one every package carries the workspace version, and nothing
    needs to read the manifests (or import the version modules) to say so."""
    conf = ws.config["versions"]
    return bool(conf["exclude"] or conf["independent"] or conf["groups"])
