"""The load generators draw from one set of pools (bench/load/click_pools.py): wrk's Lua scripts get them from
`run_wrk` on every run, and their fallbacks for hand runs equal them."""

from __future__ import annotations

import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bench.load import click_pools
from bench.load.click_pools import SESSIONS, wrk_env
from bench.load.wrk import WRK_SCRIPT, run_wrk
from bench.service.cpu_ab import IDS_SCRIPT
from model.features import ACTIONS


def _lua_fallback(script: Path, name: str) -> str:
    match = re.search(rf'os\.getenv\("{name}"\) or "([^"]*)"', script.read_text())
    assert match, f"{script.name} has no fallback for {name}"
    return match.group(1)


def test_the_lua_fallbacks_for_hand_runs_are_the_pools() -> None:
    env = wrk_env()
    for name in ("SI_WRK_USERS", "SI_WRK_ITEMS", "SI_WRK_CATEGORIES", "SI_WRK_SHELF", "SI_WRK_STRIDE"):
        assert _lua_fallback(IDS_SCRIPT, name) == env[name], name
    assert _lua_fallback(WRK_SCRIPT, "SI_WRK_SESSIONS") == str(SESSIONS)
    fallback = re.search(r'env_list\("SI_WRK_ACTIONS", \{(.*?)\}\)', WRK_SCRIPT.read_text(), re.S)
    assert fallback and tuple(re.findall(r'"(\w+)"', fallback.group(1))) == tuple(ACTIONS)


class _Capture(BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, dict[str, object]]]] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append((self.path, json.loads(raw)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _capture(tmp_path: Path, script: Path, sessions: int, threads: int) -> list[tuple[str, dict[str, object]]]:
    if shutil.which("wrk") is None:
        pytest.skip("needs wrk")
    _Capture.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        run_wrk(f"http://127.0.0.1:{server.server_address[1]}", 1, connections=2 * threads, threads=threads,
                log_path=tmp_path / "wrk.log", script=script, sessions=sessions)
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Capture.bodies) > 50
    return list(_Capture.bodies)


def test_wrk_with_ids_draws_from_the_pools_it_is_handed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every pool differs from the scripts' fallbacks here, so each value the clicks obey came through run_wrk."""
    actions, items, categories, shelf, stride, sessions = ("home", "order", "add_cart"), 700, 13, 3, 101, 30
    for name, value in (("ACTIONS", actions), ("ITEMS", items), ("CATEGORIES", categories), ("SHELF", shelf),
                        ("SHELF_STRIDE", stride)):  # fmt: skip
        monkeypatch.setattr(click_pools, name, value)
    for path, body in _capture(tmp_path, IDS_SCRIPT, sessions, threads=1):
        session = int(re.fullmatch(r"/v1/sessions/wrk-(\d+)/events", path).group(1))  # type: ignore[union-attr]
        item = int(str(body["item_id"]).removeprefix("i-"))
        assert 1 <= session <= sessions
        assert body["user_id"] == f"u-{session % click_pools.shoppers(sessions)}"
        assert item in {(session * stride + pick) % items for pick in range(shelf)}
        assert body["category_id"] == f"c-{item % categories}"
        assert body["action"] in actions


@pytest.mark.parametrize("script", [WRK_SCRIPT, IDS_SCRIPT])
def test_each_wrk_thread_sends_its_own_clicks(tmp_path: Path, script: Path) -> None:
    """Two threads never send the same event_id: a repeated one is a retry, which the service replays."""
    event_ids = [str(body["event_id"]) for _, body in _capture(tmp_path, script, SESSIONS, threads=2)]
    assert len(set(event_ids)) == len(event_ids), len(event_ids) - len(set(event_ids))
