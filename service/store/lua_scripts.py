"""The store's Lua scripts as Redis runs them: each file of lua/ behind the preludes that carry Python's
definitions (score_record.py's field names, packing.py's packed event and reply codes, context_record.py's
fields), and the shared Lua parts a script uses, so Lua and Python share one definition of each."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from service.store import context_record, packing, score_record

LUA_DIR = Path(__file__).parent / "lua"
HISTORY_SCRIPTS = ("history_start.lua", "history_handoff.lua", "history_snapshot.lua")
# Shared Lua prepended to the scripts that use it, in this order: the append script runs the context state's
# functions (context.lua) inside its one atomic call; it and the cluster's history scripts share the history
# record's (history.lua).
LUA_PARTS = {"history.lua": ("append_event.lua", *HISTORY_SCRIPTS), "context.lua": ("append_event.lua",)}


@cache
def lua_script(name: str) -> str:
    """lua/<name> behind the preludes and the shared parts it uses."""
    preludes = score_record.lua_prelude() + packing.lua_prelude() + context_record.lua_prelude()
    shared = [part for part, users in LUA_PARTS.items() if name in users]
    return preludes + "".join((LUA_DIR / part).read_text() for part in shared) + (LUA_DIR / name).read_text()
