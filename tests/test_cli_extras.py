"""Without torch, the training commands print one line naming the set-up command (README "Commands")."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.extras import TRAIN_SETUP
from tests.uvicorn_proc import REPO_ROOT

# torch made unimportable, as in the serving-only install: a finder that answers every `import torch`
# with ModuleNotFoundError (not sys.modules['torch'] = None, which libraries probing sys.modules trip on).
WITHOUT_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
from cli.main import app
app()
"""


@pytest.mark.parametrize("args", [
    ["train", "--data", "x.csv", "-o", "models/x"],
    ["export", "models/default"],
    ["evaluate", "--model", "models/default", "--data", "x.csv", "-o", "reports/x"],
])
def test_a_missing_torch_is_one_line_naming_the_setup(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and TRAIN_SETUP in lines[0] and "torch" in lines[0], done.stderr


def test_serving_commands_do_not_need_torch() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "serve", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0 and "Traceback" not in done.stderr
