"""The layering of docs/architecture.md holds: the import-linter contracts in pyproject.toml pass, and they are
strict enough that one back-import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(python_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(python_dir)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO,
                          env=env, capture_output=True, text=True)


def test_contracts_hold():
    proc = lint_imports(REPO / "python")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_back_import_breaks_contracts(tmp_path):
    shutil.copytree(REPO / "python" / "polybuild", tmp_path / "polybuild",
                    ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "polybuild" / "support" / "errors.py"
    back_import = "\n\ndef _main():\n    from polybuild.cli.main import main\n    return main\n"
    errors.write_text(errors.read_text() + back_import)
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "polybuild.support is not allowed to import polybuild.cli" in proc.stdout
