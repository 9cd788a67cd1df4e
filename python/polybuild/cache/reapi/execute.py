"""Remote execution of a task's command over REAPI (`[remote] execute = ["command"]`).

The Action is built from what the task declares, so it is the same on every machine: the input root is a Merkle
tree of `Directory` messages over the task's input files (paths relative to the workspace root, with their
executable bits), the `Command` has the argv, the working directory (the target's, relative), the declared
environment (sorted) plus `PATH` and `SOURCE_DATE_EPOCH`, the output paths (each output pattern's directory part
before its first wildcard) and the `[remote] platform` properties. Only the blobs the server lacks are uploaded;
`Execute` is followed to the end (WaitExecution when the stream breaks); stdout and stderr go into the task's log
as a local command's would; the outputs are downloaded, each verified, into place atomically.

A task that cannot run remotely (the server is down, refuses, or loses the operation) runs locally instead, with
one warning for the run; a command that ran and failed is a failure, exactly as it would be locally.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from google.protobuf.duration_pb2 import Duration

from polybuild.cache.reapi.cache import ReapiCache, UnusableEntry
from polybuild.cache.reapi.client import ReapiUnavailable, digest
from polybuild.cache.reapi.protos import remote_execution_pb2 as re
from polybuild.cache.store import is_safe_path, warn

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
QUEUEING = 600.0  # seconds an action may wait for a worker, on top of its own timeout
TIMED_OUT = 124  # the exit status of a command stopped at its timeout, as timeout(1) reports it
_WILDCARDS = frozenset("*?[")
DEADLINE_EXCEEDED = 4  # google.rpc.Code


@dataclass
class _Tree:
    files: dict[str, tuple[re.Digest, bool]] = field(default_factory=dict)
    dirs: dict[str, _Tree] = field(default_factory=dict)


def output_paths(patterns: list[str]) -> list[str] | None:
    """The REAPI output paths that cover the task's output patterns (relative to its directory): each pattern's
    leading components without a wildcard. None when a pattern has a wildcard in its first component (it could
    be anything in the directory: such a task runs locally)."""
    paths = set()
    for pattern in patterns:
        fixed = []
        for part in pattern.split("/"):
            if _WILDCARDS & set(part):
                break
            fixed.append(part)
        if not fixed:
            return None
        paths.add("/".join(fixed))
    return sorted(paths)


class RemoteExecutor:
    """Runs commands on the server behind `cache`; shared by the run's tasks (threads)."""

    def __init__(self, cache: ReapiCache, builders: list[str], platform: dict[str, str], timeout: int) -> None:
        self.cache = cache
        self.timeout = timeout
        self.builders = frozenset(builders)
        self.platform = re.Platform(properties=[re.Platform.Property(name=k, value=v)
                                                for k, v in sorted(platform.items())])
        self._warned = threading.Event()

    def run(self, *, root: Path, workdir: str, argv: list[str], env: dict[str, str], inputs: list[str],
            outputs: list[str], log: BinaryIO) -> int | None:
        """The command's exit status (its outputs in place under root/workdir when 0), or None when it could not
        run remotely (then it is to run locally)."""
        paths = output_paths(outputs)
        if paths is None or self._warned.is_set() or not self.cache.available \
                or not all(is_safe_path(f) for f in inputs):
            return None  # once remote execution failed, the run's other tasks do not wait for it again
        try:
            return self._run(root, workdir, argv, env, inputs, paths, log)
        except (ReapiUnavailable, UnusableEntry, OSError) as exc:
            if not self._warned.is_set():
                self._warned.set()
                warn(f"remote execution on {self.cache.shown} failed ({exc}); running the task locally")
            return None

    def _run(self, root: Path, workdir: str, argv: list[str], env: dict[str, str], inputs: list[str],
             paths: list[str], log: BinaryIO) -> int:
        contents: dict[str, tuple[re.Digest, Path | bytes]] = {}  # every blob of the action, by hash
        tree = _Tree()
        for rel in inputs:
            node, *parts = [tree, *rel.split("/")]
            for part in parts[:-1]:
                node = node.dirs.setdefault(part, _Tree())
            data = (root / rel).read_bytes()
            blob = digest(data)
            contents[blob.hash] = (blob, root / rel)
            node.files[parts[-1]] = (blob, os.access(root / rel, os.X_OK))
        node = tree
        for part in [] if workdir == "." else workdir.split("/"):  # the working directory exists, even empty
            node = node.dirs.setdefault(part, _Tree())
        input_root = _store_tree(tree, contents)
        variables = {"PATH": DEFAULT_PATH, **env}
        environment = [re.Command.EnvironmentVariable(name=k, value=v) for k, v in sorted(variables.items())]
        command = re.Command(arguments=argv, working_directory="" if workdir == "." else workdir,
                             output_paths=paths, environment_variables=environment,
                             platform=self.platform).SerializeToString(deterministic=True)
        action = re.Action(command_digest=digest(command), input_root_digest=input_root, platform=self.platform,
                           timeout=Duration(seconds=self.timeout)).SerializeToString(deterministic=True)
        for message in (command, action):
            contents[digest(message).hash] = (digest(message), message)
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
            self._place_outputs(result, root / workdir, paths)
        return result.exit_code

    def _place_outputs(self, result: re.ActionResult, base: Path, paths: list[str]) -> None:
        """The result's files into `base`: only under the output paths asked for, each verified."""
        files = [(f.path, f.digest, f.is_executable) for f in result.output_files]
        for out in result.output_directories:
            tree = re.Tree.FromString(self.cache.download(out.tree_digest))
            children = {digest(d.SerializeToString(deterministic=True)).hash: d for d in tree.children}
            files += _tree_files(out.path, tree.root, children)
        if result.output_symlinks or result.output_file_symlinks or result.output_directory_symlinks:
            raise UnusableEntry("the action produced symlinks, which polybuild does not place")
        for path, blob, executable in files:
            if not is_safe_path(path) or not any(path == p or path.startswith(f"{p}/") for p in paths):
                raise UnusableEntry(f"an output path that was not asked for: {path[:120]!r}")
            self.cache.download_to(blob, base / path, 0o755 if executable else 0o644)


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
