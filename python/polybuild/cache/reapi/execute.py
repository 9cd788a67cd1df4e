"""Remote execution of a task's command over REAPI (`[remote] execute = ["command", "go"]`).

A builder describes the command (`builders.RemoteCommand`: argv, environment, working directory, the input files
by their path in the action's input root, the output paths and where each lands here); this module turns it into the
Action, the same on every machine: the input root is a Merkle tree of `Directory` messages over the input files
(with their executable bits), the `Command` has the argv, the working directory (relative), the environment
(sorted, with `PATH`), the output paths and the `[remote] platform` properties. Only the blobs the server lacks are
uploaded; `Execute` is followed to the end (WaitExecution when the stream breaks); stdout and stderr go into the
task's log as a local command's would; the outputs are downloaded, each verified, into place atomically.

A task that cannot run remotely (the server is down, refuses, or loses the operation) runs locally instead, with
one warning for the run; a command that ran and failed is a failure, exactly as it would be locally.
"""

from __future__ import annotations

import os
import posixpath
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf.duration_pb2 import Duration

from polybuild.builders import DEFAULT_PATH, RemoteCommand
from polybuild.cache.reapi.cache import ReapiCache, UnusableEntry
from polybuild.cache.reapi.client import ReapiUnavailable, digest
from polybuild.cache.reapi.protos import remote_execution_pb2 as re
from polybuild.cache.store import is_safe_path, warn
from polybuild.support.fingerprint import file_digests

QUEUEING = 600.0  # seconds an action may wait for a worker, on top of its own timeout
TIMED_OUT = 124  # the exit status of a command stopped at its timeout, as timeout(1) reports it
DEADLINE_EXCEEDED = 4  # google.rpc.Code


@dataclass
class _Tree:
    files: dict[str, tuple[re.Digest, bool]] = field(default_factory=dict)
    dirs: dict[str, _Tree] = field(default_factory=dict)

    def directory(self, path: str) -> _Tree:
        """The node of the directory `path` ("" for the root), created (empty) if need be."""
        node = self
        for part in path.split("/") if path else []:
            node = node.dirs.setdefault(part, _Tree())
        return node


class RemoteExecutor:
    """Runs commands on the server behind `cache`; shared by the run's tasks (threads)."""

    def __init__(self, cache: ReapiCache, builders: list[str], platform: dict[str, str], timeout: int) -> None:
        self.cache = cache
        self.timeout = timeout
        self.builders = frozenset(builders)
        self.platform = re.Platform(properties=[re.Platform.Property(name=k, value=v)
                                                for k, v in sorted(platform.items())])
        self._warned = threading.Event()
        self._lock = threading.Lock()
        self._declined: set[str] = set()

    def decline(self, task_id: str, reason: str) -> None:
        """Say why a task of a builder in `execute` builds here: once per run and reason (`reason` completes
        "it ...")."""
        with self._lock:
            first = reason not in self._declined
            self._declined.add(reason)
        if first:
            print(f"polybuild: {task_id} builds here, not on the remote executor: it {reason} (the run's other "
                  "such tasks build here too)", file=sys.stderr, flush=True)

    def run(self, command: RemoteCommand, log: BinaryIO) -> int | None:
        """The command's exit status (its outputs in place when 0), or None when it could not run remotely (then
        it is to run locally)."""
        if self._warned.is_set() or not self.cache.available \
                or not all(is_safe_path(p) for p in [*command.files, *command.outputs]):
            return None  # once remote execution failed, the run's other tasks do not wait for it again
        try:
            return self._run(command, log)
        except (ReapiUnavailable, UnusableEntry, OSError) as exc:
            if not self._warned.is_set():
                self._warned.set()
                warn(f"remote execution on {self.cache.shown} failed ({exc}); running the task locally")
            return None

    def _run(self, command: RemoteCommand, log: BinaryIO) -> int:
        contents: dict[str, tuple[re.Digest, Path | bytes]] = {}  # every blob of the action, by hash
        workdir = "" if command.workdir == "." else command.workdir
        input_root = _store_tree(_input_tree(command, workdir, contents), contents)
        variables = {"PATH": DEFAULT_PATH, **command.env}
        environment = [re.Command.EnvironmentVariable(name=k, value=v) for k, v in sorted(variables.items())]
        message = re.Command(arguments=command.argv, working_directory=workdir, output_paths=sorted(command.outputs),
                             environment_variables=environment,
                             platform=self.platform).SerializeToString(deterministic=True)
        action = re.Action(command_digest=digest(message), input_root_digest=input_root, platform=self.platform,
                           timeout=Duration(seconds=self.timeout)).SerializeToString(deterministic=True)
        for blob in (message, action):
            contents[digest(blob).hash] = (digest(blob), blob)
        changed = self.cache.upload_missing([d for d, _ in contents.values()], lambda h: contents[h][1])
        if changed:
            raise UnusableEntry(f"the input {changed[:12]} changed while it was uploaded")
        response = self.cache.client.execute(digest(action), self.timeout + QUEUEING)
        if response.status.code == DEADLINE_EXCEEDED:  # the action ran out of time: its failure, not the server's
            log.write(f"[polybuild] the action ran longer than [remote] execute-timeout ({self.timeout}s) on "
                      f"{self.cache.shown} and was stopped\n".encode())
            return TIMED_OUT
        if response.status.code != 0:
            raise ReapiUnavailable(f"the server could not run it: {response.status.message or response.status.code}")
        result = response.result
        for raw, blob in ((result.stdout_raw, result.stdout_digest), (result.stderr_raw, result.stderr_digest)):
            log.write(raw or (self.cache.download(blob) if blob.size_bytes else b""))
        log.flush()
        if result.exit_code == 0:
            self._place_outputs(result, command.outputs)
        return result.exit_code

    def _place_outputs(self, result: re.ActionResult, outputs: dict[str, Path]) -> None:
        """The result's files where `outputs` says: only under the output paths asked for, each verified."""
        files = [(f.path, f.digest, f.is_executable) for f in result.output_files]
        for out in result.output_directories:
            tree = re.Tree.FromString(self.cache.download(out.tree_digest))
            children = {digest(d.SerializeToString(deterministic=True)).hash: d for d in tree.children}
            files += _tree_files(out.path, tree.root, children)
        if result.output_symlinks or result.output_file_symlinks or result.output_directory_symlinks:
            raise UnusableEntry("the action produced symlinks, which polybuild does not place")
        for path, blob, executable in files:
            asked = next((p for p in outputs if path == p or path.startswith(f"{p}/")), None)
            if asked is None or not is_safe_path(path):
                raise UnusableEntry(f"an output path that was not asked for: {path[:120]!r}")
            dest = outputs[asked] if path == asked else outputs[asked] / path[len(asked) + 1:]
            self.cache.download_to(blob, dest, 0o755 if executable else 0o644)


def _input_tree(command: RemoteCommand, workdir: str, contents: dict[str, tuple[re.Digest, Path | bytes]]) -> _Tree:
    """The input root's files (hashed here, each kept in `contents`), its working directory and the parents of
    its output paths (which exist before the command runs, even empty)."""
    tree = _Tree()
    files = list(command.files.items())
    hashes = file_digests("/", [os.path.relpath(path, "/") for _, path in files])  # absolute paths, from /
    for (rel, path), sha256 in zip(files, hashes, strict=True):
        blob = re.Digest(hash=sha256, size_bytes=path.stat().st_size)
        contents[blob.hash] = (blob, path)
        directory, _, name = rel.rpartition("/")
        tree.directory(directory).files[name] = (blob, os.access(path, os.X_OK))
    tree.directory(workdir)
    for out in command.outputs:
        tree.directory(posixpath.dirname(posixpath.join(workdir, out)))
    return tree


def _store_tree(tree: _Tree, contents: dict[str, tuple[re.Digest, Path | bytes]]) -> re.Digest:
    """The digest of the tree's Directory message (its subdirectories' first), each message kept in `contents`."""
    files = [re.FileNode(name=n, digest=d, is_executable=x) for n, (d, x) in sorted(tree.files.items())]
    dirs = [re.DirectoryNode(name=n, digest=_store_tree(sub, contents)) for n, sub in sorted(tree.dirs.items())]
    message = re.Directory(files=files, directories=dirs).SerializeToString(deterministic=True)
    contents[digest(message).hash] = (digest(message), message)
    return digest(message)


def _tree_files(prefix: str, directory: re.Directory, children: dict[str, re.Directory]
                ) -> list[tuple[str, re.Digest, bool]]:
    files = [(f"{prefix}/{f.name}", f.digest, f.is_executable) for f in directory.files]
    for sub in directory.directories:
        child = children.get(sub.digest.hash)
        if child is None:
            raise UnusableEntry(f"the output tree lacks the directory {prefix}/{sub.name}")
        files += _tree_files(f"{prefix}/{sub.name}", child, children)
    return files
