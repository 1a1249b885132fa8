"""Formatting helpers of the evaluation report: estimates, numbers, markdown tables."""

from __future__ import annotations

from typing import Any


def est(d: dict[str, Any] | None, digits: int = 3, percent: bool = False) -> str:
    """An Estimate dict as '0.912 [0.901, 0.923]'; '–' (with its reason in a footnote-ish tail) if undefined."""
    if not d or d.get("value") is None:
        return f"– ({d['reason']})" if d and d.get("reason") else "–"
    scale = 100.0 if percent else 1.0
    text = f"{d['value'] * scale:.{digits}f}"
    if d.get("ci_low") is not None:
        text += f" [{d['ci_low'] * scale:.{digits}f}, {d['ci_high'] * scale:.{digits}f}]"
    return text


def num(value: float | None, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * (100 if percent else 1):.{digits}f}" + (" %" if percent else "")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
