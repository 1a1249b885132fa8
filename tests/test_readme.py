"""The README's quick start, pasted as a block, works: its curl lines run against a real service."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from model.card import ModelCard
from model.risk import decision_thresholds, intent_name
from service.app import create_app
from tests.redis_procs import RedisServer
from tests.service_support import service_settings, tiny_model_dir
from tests.uvicorn_proc import REPO_ROOT, UvicornThread


def quick_start() -> list[str]:
    """The commands of the README's quick-start block, continuation lines joined."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README has no quick-start block"
    return block.group(1).replace("\\\n", " ").strip().splitlines()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[UvicornThread]:
    settings = service_settings(tiny_model_dir(tmp_path_factory.getbasetemp()), redis_server.url)
    with UvicornThread(create_app(settings)) as running:
        yield running


def test_the_block_starts_waits_and_stops_the_service() -> None:
    commands = quick_start()
    assert commands[0] == "bash scripts/bootstrap.sh"
    assert any(c.startswith(".venv/bin/session-intent serve ") and "& server=$!" in c for c in commands)
    wait = next(c for c in commands if "readyz" in c)
    assert wait.startswith("timeout 60 ") and "tail" in wait  # gives up, and shows why
    assert commands[-1].startswith("kill ")


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_its_curl_lines_answer_json_and_read_the_click_back(server: UvicornThread, redis_url: str) -> None:
    curls = [c for c in quick_start() if c.startswith("curl -s ") and "readyz" not in c]
    assert len(curls) == 3
    answers = []
    for command in curls:
        command = command.replace("localhost:8000", f"127.0.0.1:{server.port}")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    click, risk, at_risk = answers
    assert "error" not in click and "error" not in risk, answers  # /risk right after the POST: no 404
    assert risk["event_index"] == click["event_index"] and risk["abandonment_risk"] == click["abandonment_risk"]
    assert "sessions" in at_risk


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_committed_default_answers_the_quick_start_click_by_its_purchase_policy(redis_server: RedisServer) -> None:
    """The quick start's click (no ids) against the shipped model: the intent follows the card's purchase policy
    (a precision target on validation clicks), not the F1-best τ_order that made an average first click a
    `purchase`."""
    model_dir = REPO_ROOT / "models" / "default"
    card = ModelCard.load(model_dir)
    assert card.purchase_policy is not None, "models/default has no purchase policy: scripts/make-default-model.sh"
    click = next(c for c in quick_start() if "/events" in c)
    with UvicornThread(create_app(service_settings(model_dir, redis_server.url))) as running:
        command = click.replace("localhost:8000", f"127.0.0.1:{running.port}")
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    answer = json.loads(done.stdout)
    expected = intent_name(answer["p_make_order"], answer["abandonment_risk"], decision_thresholds(card))
    assert answer["intent"] == expected == "browse", answer
