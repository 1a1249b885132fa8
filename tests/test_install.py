"""The installs users make, tried as a new user would (README "Quick start", issue 18).

A fresh copy of the repo (the files git tracks or would track, no .venv) gets the README's quick-start
block pasted whole into bash: it builds the serving-only venv, serves, and answers the click. That venv
then runs every command of the CLI: each one loads, and one that needs the training or test set-up
says so in one line naming the set-up command, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.extras import FULL_SETUP
from cli.main import app
from tests.uvicorn_proc import REPO_ROOT

pytestmark = pytest.mark.slow

LOCAL_LABEL = re.compile(r"^[A-Za-z0-9._-]+==[^\s;#]*\+", re.M)


def test_constraints_carry_no_local_version_labels() -> None:
    """`torch==2.13.0+cpu` exists on no public index; `torch==2.13.0` matches every build (PEP 440)."""
    text = (REPO_ROOT / "constraints.txt").read_text()
    assert re.search(r"^torch==\d", text, re.M), "torch must stay pinned"
    assert not LOCAL_LABEL.search(text), LOCAL_LABEL.findall(text)


def quick_start_block() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README has no quick-start block"
    return block.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fresh_copy(target: Path) -> None:
    """The repo as a clone of it holds it: tracked and not-ignored files, no venv, no caches."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.fixture(scope="module")
def quick_start_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, float]]:
    """(the fresh copy, the block's stdout, seconds from nothing to the block's end)."""
    if shutil.which("git") is None or shutil.which("curl") is None:
        pytest.skip("needs git and curl")
    copy = tmp_path_factory.mktemp("fresh-clone")
    _fresh_copy(copy)
    port = _free_port()
    block = quick_start_block().replace("localhost:8000", f"localhost:{port}")
    env = {**os.environ, "SI_PORT": str(port)}
    for inherited in ("VIRTUAL_ENV", "PYTHONPATH", "SI_MODEL_DIR", "SI_REDIS_URL"):
        env.pop(inherited, None)
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", block], cwd=copy, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, (done.stdout, done.stderr, (copy / "serve.log").read_text()[-3000:])
    yield copy, done.stdout, elapsed


def _json_documents(text: str) -> list[Any]:
    """The JSON answers curl printed back to back (no newline after each), skipping other output."""
    decoder, found, at = json.JSONDecoder(), [], text.find("{")
    while at != -1:
        document, end = decoder.raw_decode(text, at)
        found.append(document)
        at = text.find("{", end)
    return found


def test_the_quick_start_block_pasted_whole_serves_and_answers(quick_start_run: tuple[Path, str, float]) -> None:
    _, stdout, elapsed = quick_start_run
    answers = _json_documents(stdout)
    assert len(answers) == 3, stdout
    click_answer, risk, at_risk = answers
    assert click_answer["event_index"] == risk["event_index"] == 0, answers
    assert risk["abandonment_risk"] == click_answer["abandonment_risk"] and "sessions" in at_risk
    print(f"fresh copy → bootstrap → serve → click → /risk → stop: {elapsed:.0f} s")


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every leaf command of the CLI (typer ships its own click, so groups are told by their `commands`)."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _command_paths(sub, (*prefix, name))
    else:
        yield prefix


def test_every_command_loads_or_names_its_setup_on_the_serving_install(
    quick_start_run: tuple[Path, str, float], tmp_path: Path,
) -> None:
    copy, _, _ = quick_start_run
    cli = copy / ".venv" / "bin" / "session-intent"
    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("serve",) in paths and ("bench", "service") in paths and len(paths) >= 8
    named_setup = []
    for path in paths:
        helped = subprocess.run([str(cli), *path, "--help"], capture_output=True, text=True, timeout=60)
        assert helped.returncode == 0 and "Traceback" not in helped.stderr, (path, helped.stderr)
        if path == ("serve",):
            continue  # served by the quick start above
        # With no arguments a command either refuses them (usage), runs, or names its set-up: never a traceback.
        proc = subprocess.Popen([str(cli), *path], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            _, stderr = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:  # it runs: that is working, not failing
            os.killpg(proc.pid, signal.SIGKILL)
            _, stderr = proc.communicate()
        assert "Traceback" not in stderr, (path, stderr)
        if "extra (" in stderr:
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and FULL_SETUP in lines[0] and proc.returncode == 2, (path, stderr)
            named_setup.append(path)
    assert ("bench", "service") in named_setup, named_setup
    # The commands with required options, given the options, reach their imports and name the set-up too.
    log = tmp_path / "log.csv"
    log.write_text("session_id,ts,action,from_ad\n")
    model = str(copy / "models" / "default")
    for args in (["prepare", "--source", "taobao", "-i", str(log), "-o", "out.csv"],
                 ["train", "--data", str(log), "-o", "m"],
                 ["evaluate", "--model", model, "--data", str(log), "-o", "r"],
                 ["export", model, "--data", str(log)]):
        done = subprocess.run([str(cli), *args], cwd=tmp_path, capture_output=True, text=True, timeout=90)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and FULL_SETUP in lines[0], (args, done.stderr)
