"""Hatch build hook: the shell completion scripts, generated from polybuild's parser when the wheel is built and
shipped in it, so neither a shell's start nor a TAB runs the parser (`polybuild completion SHELL` prints them).

They go in the package (polybuild/cli/completions/) and, as the wheel's data, where a `pip install --user` or a
system install puts them on each shell's completion path (share/bash-completion, share/zsh/site-functions,
share/fish/vendor_completions.d).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SHARED = {"polybuild": "bash-completion/completions", "_polybuild": "zsh/site-functions",
          "polybuild.fish": "fish/vendor_completions.d"}


class CompletionScripts(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if version == "editable":  # an editable install runs from the tree: `polybuild completion` generates them
            return
        self._scripts = Path(tempfile.mkdtemp(prefix="polybuild-completions-"))
        # A fresh interpreter on the source being built (the build environment has none of its dependencies: the
        # parser needs only the standard library).
        env = {**os.environ, "PYTHONPATH": str(Path(self.root) / "python")}
        subprocess.run([sys.executable, "-m", "polybuild.cli.completion_scripts", str(self._scripts)], env=env,
                       check=True)
        for name, shared in SHARED.items():
            build_data["force_include"][str(self._scripts / name)] = f"polybuild/cli/completions/{name}"
            build_data["shared_data"][str(self._scripts / name)] = f"share/{shared}/{name}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if version != "editable":
            shutil.rmtree(self._scripts, ignore_errors=True)
