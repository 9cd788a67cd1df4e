"""A polybuild cache key as a REAPI `Action`, so that the key and the action digest are one thing.

polybuild's task key (cache/keys.py) already hashes everything a task's outputs depend on, with no absolute path
and no machine-specific value, so the same task has the same key on every machine. The Action is a pure function
of it:

- the `Command` is `["polybuild-task", <key>]` with no environment and no output paths (outputs are what the
  ActionResult lists);
- the input root is a `Directory` holding one file, `polybuild-key`, whose content is the key;
- the Action names both by digest; it has no platform, timeout or salt.

Its digest is the action-cache key. The four messages are canonical protobuf encodings (fields in number order,
no unknown fields), so every client computes the same bytes; they are uploaded with the outputs, which makes the
entry a complete Action in the server's CAS (a server that checks an entry's action is present, or a person
inspecting one with a REAPI tool, finds it).
"""

from __future__ import annotations

from dataclasses import dataclass

from polybuild.cache.reapi.client import digest
from polybuild.cache.reapi.protos import remote_execution_pb2 as re

COMMAND_NAME = "polybuild-task"
KEY_FILE = "polybuild-key"


@dataclass(frozen=True)
class KeyedAction:
    digest: re.Digest
    blobs: tuple[tuple[re.Digest, bytes], ...]  # the Action, its Command, input root and key file, as uploaded


def action_for_key(key: str) -> KeyedAction:
    key_blob = key.encode()
    key_digest = digest(key_blob)
    root = re.Directory(files=[re.FileNode(name=KEY_FILE, digest=key_digest)]).SerializeToString(
        deterministic=True)
    command = re.Command(arguments=[COMMAND_NAME, key]).SerializeToString(deterministic=True)
    action = re.Action(command_digest=digest(command), input_root_digest=digest(root)).SerializeToString(
        deterministic=True)
    action_digest = digest(action)
    return KeyedAction(action_digest, ((action_digest, action), (digest(command), command), (digest(root), root),
                                       (key_digest, key_blob)))
