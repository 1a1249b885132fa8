"""`session-intent replay --data log.csv --model A [--candidate B]`: a log's clicks through the serving path.

Each model replays the whole log through service/replay.py (append_event.lua on a private embedded Redis,
the MicroBatcher, the engine, write_scores.lua), so the scores are the ones the service would answer.
Writes to --out:

    scores.csv     one row per click: session_id, ts, action, then each model's p_add_cart, p_make_order,
                   abandonment_risk and intent
    alerts.csv     the alerts each model raises: a session's first click whose intent is cart_abandonment
                   (abandonment_risk ≥ the card's τ_risk, p_make_order < τ_order)
    summary.json   per model: alerts, and where the log has outcomes (it always does: the rest of each
                   session is in it) ROC/PR AUC per label; with a candidate, A against B: intent agreement,
                   alert agreement and the risks' correlation
    summary.md     the same as tables

A model with context (model/context.py) gets each click's context computed over the whole log, as training
computes it (the shopper's earlier sessions included, whatever split they fall in); see service/replay_context.py.

polars (reading the log) and sklearn (the metrics) are imported inside the command.
"""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from service.settings import Precision

console = Console()
SCORE_COLUMNS = ("p_add_cart", "p_make_order", "abandonment_risk", "intent")


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False,
                                       help="Event log in the common form session_id,ts,action[,from_ad].")],
    model: Annotated[Path, typer.Option("--model", exists=True, file_okay=False, help="Model directory A.")],
    candidate: Annotated[Path | None, typer.Option("--candidate", exists=True, file_okay=False,
                                                   help="Model directory B, compared with A.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Folder for the outputs.")] = Path("replay"),
    split: Annotated[str, typer.Option("--split", help="all: every session of the log; test: only the test "
                                       "split training held out (sessions curated as training does).")] = "all",
    precision: Annotated[Precision, typer.Option("--precision", help="As SI_PRECISION.")] = "int8",
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1, help="As SI_MAX_BATCH_SIZE; 1 scores "
                                                "each click alone, as a quiet live service does.")] = 64,
) -> None:
    """Replay a log's clicks through the serving path with one or two models; scores, alerts, metrics."""
    from service.model_repository import version_at
    from service.replay import replay_clicks
    from service.settings import Settings

    models = [model] + ([candidate] if candidate is not None else [])
    sessions, contexts = _read_sessions(data, model, split, with_context=_any_context(models))
    clicks = clicks_of(sessions)
    settings = Settings(precision=precision, max_batch_size=max_batch_size, auth_enabled=False,
                        providers=("CPUExecutionProvider",))  # fmt: skip
    versions = [version_at(path) for path in models]
    results: dict[str, list[Any]] = {}
    for version in versions:
        with console.status(f"replaying {len(clicks)} clicks on {version.label}"):
            results[version.label] = asyncio.run(replay_clicks(clicks, version, settings, contexts=contexts))
    if len(results) < len(versions):
        raise typer.BadParameter("--model and --candidate must have different labels (directory names)")
    summary = summarise(sessions, clicks, results)
    out.mkdir(parents=True, exist_ok=True)
    write_outputs(out, clicks, results, summary)
    console.print(_table(summary))
    console.print(f"wrote {out}/scores.csv, alerts.csv, summary.json, summary.md")


def _any_context(models: list[Path]) -> bool:
    from model.card import ModelCard

    return any(ModelCard.load(path).context_names for path in models)


def _read_sessions(data: Path, model: Path, split: str, with_context: bool = False) -> tuple[Any, np.ndarray | None]:
    """The sessions to replay, and with_context: (E, CONTEXT_DIM) raw context of their events, computed over
    the whole log first (history needs the shopper's earlier sessions, short or in another split)."""
    from model.card import ModelCard
    from model.context import compute_context
    from model.data.dataset import Split, _curated, _splitter, read_events_csv

    if split not in ("all", "test"):
        raise typer.BadParameter("--split must be all or test")
    sessions = read_events_csv(data)
    contexts = compute_context(sessions.events, sessions.context_ids) if with_context else None
    if split == "all":
        return sessions, contexts
    keep = _curated(sessions)
    curated = sessions.select(keep)
    mode = ModelCard.load(model).data.get("split", "session")
    keep[keep] = _splitter(mode)(curated) == Split.TEST
    rows = np.repeat(keep, sessions.lengths)
    return sessions.select(keep), (contexts[rows] if contexts is not None else None)


def clicks_of(sessions: Any) -> list[Any]:
    """Every event of the log as a Click, session by session, in arrival order."""
    from model.features import ACTIONS
    from service.replay import Click

    ev = sessions.events
    session = ev.session_of_event()
    return [Click(str(sessions.ids[s]), float(t), ACTIONS[int(a)], bool(f))
            for s, t, a, f in zip(session, ev.ts, ev.actions, ev.from_ad, strict=True)]


def alerts_of(clicks: list[Any], answers: list[Any]) -> list[dict[str, Any]]:
    """A session's first click whose intent is cart_abandonment."""
    alerted: set[str] = set()
    out = []
    for click, answer in zip(clicks, answers, strict=True):
        if answer.intent == "cart_abandonment" and click.session_id not in alerted:
            alerted.add(click.session_id)
            out.append({"model": answer.model, "session_id": click.session_id, "ts": click.ts,
                        "event_index": answer.event_index, "abandonment_risk": answer.abandonment_risk})
    return out


def summarise(sessions: Any, clicks: list[Any], results: dict[str, list[Any]]) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from model.data.dataset import abandonment_targets, prefix_targets

    targets = prefix_targets(sessions)  # (E, 2): an add_cart / an order follows later in the session
    truth = {"add_cart": targets[:, 0], "make_order": targets[:, 1], "abandonment": abandonment_targets(sessions)}
    column = {"add_cart": "p_add_cart", "make_order": "p_make_order", "abandonment": "abandonment_risk"}
    summary: dict[str, Any] = {"clicks": len(clicks), "sessions": len(sessions), "models": {}}
    for label, answers in results.items():
        alerts = alerts_of(clicks, answers)
        entry: dict[str, Any] = {"model": answers[0].model if answers else label, "alerts": len(alerts), "metrics": {}}
        for name, y in truth.items():
            score = np.array([getattr(a, column[name]) for a in answers])
            if 0 < y.sum() < len(y):
                entry["metrics"][name] = {"roc_auc": float(roc_auc_score(y, score)),
                                          "pr_auc": float(average_precision_score(y, score)), "positives": int(y.sum())}
        summary["models"][label] = entry
    if len(results) == 2:
        (la, a), (lb, b) = results.items()
        risk_a, risk_b = np.array([x.abandonment_risk for x in a]), np.array([x.abandonment_risk for x in b])
        alerted_a = {r["session_id"] for r in alerts_of(clicks, a)}
        alerted_b = {r["session_id"] for r in alerts_of(clicks, b)}
        summary["comparison"] = {
            "a": la, "b": lb,
            "intent_agreement": float(np.mean([x.intent == y.intent for x, y in zip(a, b, strict=True)])),
            "risk_correlation": float(np.corrcoef(risk_a, risk_b)[0, 1]) if len(a) > 1 else None,
            "alerted_sessions": {"a_only": len(alerted_a - alerted_b), "b_only": len(alerted_b - alerted_a),
                                 "both": len(alerted_a & alerted_b)},
        }
    return summary


def write_outputs(out: Path, clicks: list[Any], results: dict[str, list[Any]], summary: dict[str, Any]) -> None:
    with (out / "scores.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["session_id", "ts", "action"] + [f"{label}:{c}" for label in results for c in SCORE_COLUMNS])
        for i, click in enumerate(clicks):
            row = [click.session_id, click.ts, click.action]
            for answers in results.values():
                row += [getattr(answers[i], c) for c in SCORE_COLUMNS]
            writer.writerow(row)
    with (out / "alerts.csv").open("w", newline="") as handle:
        fields = ["model", "session_id", "ts", "event_index", "abandonment_risk"]
        dict_writer = csv.DictWriter(handle, fieldnames=fields)
        dict_writer.writeheader()
        for answers in results.values():
            dict_writer.writerows(alerts_of(clicks, answers))
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(summary_markdown(summary))


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Replay: {summary['clicks']} clicks of {summary['sessions']} sessions", "",
             "| model | alerts | ROC AUC add_cart | ROC AUC make_order | ROC AUC abandonment | PR AUC abandonment |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, entry in summary["models"].items():
        m = entry["metrics"]

        def auc(name: str, kind: str = "roc_auc", m: dict[str, Any] = m) -> str:
            return f"{m[name][kind]:.4f}" if name in m else "n/a"

        lines.append(f"| {label} | {entry['alerts']} | {auc('add_cart')} | {auc('make_order')} | "
                     f"{auc('abandonment')} | {auc('abandonment', 'pr_auc')} |")
    comparison = summary.get("comparison")
    if comparison:
        alerted = comparison["alerted_sessions"]
        lines += ["", f"{comparison['a']} against {comparison['b']}: intent agreement "
                  f"{comparison['intent_agreement']:.1%}, risk correlation {comparison['risk_correlation']:.4f}, "
                  f"alerted sessions both {alerted['both']}, only A {alerted['a_only']}, only B {alerted['b_only']}."]
    return "\n".join(lines) + "\n"


def _table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"replay of {summary['clicks']} clicks, {summary['sessions']} sessions")
    for column in ("model", "alerts", "ROC AUC add_cart", "ROC AUC make_order", "ROC AUC abandonment"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for label, entry in summary["models"].items():
        m = entry["metrics"]
        aucs = (f"{m[n]['roc_auc']:.4f}" if n in m else "n/a" for n in ("add_cart", "make_order", "abandonment"))
        table.add_row(label, str(entry["alerts"]), *aucs)
    return table
