"""The command line written into each report: what regenerates it, read from the running CLI command.

Every option is written with the value it ran with, its default too, so that a default changed later
cannot change what the line regenerates. Left out: options that only say where the files go, options
with no value, and a path left at its default (this checkout's absolute path; a clone's default is its
own).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

PROGRAM = "session-intent"
OUTPUT_OPTIONS = frozenset({"out", "out_dir", "tmp_dir"})


def regenerate_command(ctx: typer.Context, omit: Iterable[str] = OUTPUT_OPTIONS) -> str:
    """`session-intent bench <name> --option value ...` for the command `ctx` runs."""
    words = [PROGRAM, *_subcommands(ctx)]
    skip = set(omit)
    for param in ctx.command.params:
        if param.param_type_name != "option" or param.name is None or param.name in skip:
            continue
        words += _option_words(param, ctx.params.get(param.name))
    return shlex.join(words)


def _subcommands(ctx: typer.Context) -> list[str]:
    names: list[str] = []
    node: Any = ctx  # typer.Context on the leaf, its vendored click Context above
    while node.parent is not None:
        names.append(node.info_name or "")
        node = node.parent
    return names[::-1]


def _option_words(param: Any, value: object) -> list[str]:
    """`param` is an option of the CLI's click (typer vendors its own copy, so no click type is named here)."""
    if value is None or (isinstance(value, Path) and _is_default_path(value, param.default)):
        return []
    flag = next((o for o in param.opts if o.startswith("--")), param.opts[0])
    if param.is_flag:
        off = next(iter(param.secondary_opts), None)
        return [flag] if value else ([off] if off else [])
    values = value if param.multiple and isinstance(value, list | tuple) else [value]
    return [word for v in values for word in (flag, _text(v))]


def _is_default_path(value: Path, default: object) -> bool:
    return isinstance(default, str | Path) and value.resolve() == Path(default).resolve()


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
