"""Without the training set-up, its commands print one line naming the set-up command (README "Commands").

Fast, in-process stand-in for tests/test_install.py's serving-only venv: the modules are hidden, not absent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.extras import FULL_SETUP
from tests.uvicorn_proc import REPO_ROOT

# The extras' modules made unimportable, as in the serving-only install: a finder that answers each such
# import with ModuleNotFoundError (not sys.modules['torch'] = None, which libraries probing sys.modules trip on).
WITHOUT_TORCH = """
import importlib.abc, sys
HIDDEN = {"torch", "sklearn", "polars", "onnx", "aiohttp", "psutil", "yaml"}
class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Hidden())
sys.argv[0] = "session-intent"
from cli.main import main
main()
"""


@pytest.mark.parametrize("args", [
    ["train", "--data", "x.csv", "-o", "models/x"],
    ["export", "models/default"],
    ["evaluate", "--model", "models/default", "--data", "x.csv", "-o", "reports/x"],
    ["prepare", "--source", "taobao", "-i", "README.md", "-o", "/tmp/never-written.csv"],
    ["bench", "service"],
])
def test_a_missing_torch_is_one_line_naming_the_setup(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and FULL_SETUP in lines[0] and "extra" in lines[0], done.stderr


@pytest.mark.parametrize("command", [["serve"], ["prepare"], ["train"], ["bench", "service"]])
def test_help_works_without_the_extras(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *command, "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
