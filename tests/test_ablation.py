"""The context ablation end to end on a tiny synthetic log: trained context models, CSV, markdown, report section."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from model.card import ModelCard
from model.data.synth import generate_sessions, write_csv
from model.evaluation.ablation import AblationOptions, run_ablation
from model.evaluation.report.ablation import splice_report, write_ablation
from model.training.config import TrainConfig


@pytest.mark.usefixtures("one_torch_thread")
def test_ablation_writes_rows_models_and_the_report_section(tmp_path: Path) -> None:
    data = tmp_path / "synth.csv"
    write_csv(generate_sessions(200, seed=4), data)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.md").write_text("# Evaluation\n\n## Notes\n\n- a note\n")
    opts = AblationOptions(
        splits=("session",), sets=("none", "session+history"), baselines=("logreg",), n_boot=10,
        train=TrainConfig(epochs=1, patience=None), command="session-intent ablation …",
    )  # fmt: skip
    result = run_ablation(data, tmp_path / "models", opts)
    md, table = write_ablation(result, tmp_path / "out")
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["context"], r["model"]) for r in rows] == [
        ("none", "network"), ("none", "logreg"), ("session+history", "network"), ("session+history", "logreg"),
    ]  # fmt: skip
    assert all(0.0 <= float(r["make_order_roc_auc"]) <= 1.0 for r in rows)
    card = ModelCard.load(tmp_path / "models" / "session_session_history")
    assert len(card.context_names) == 16 and card.context["fingerprint"]
    assert ModelCard.load(tmp_path / "models" / "session_none").context == {}
    assert "session-intent ablation …" in md.read_text() and "## Targets" in md.read_text()
    assert "train 20% of their training sessions id-less" in md.read_text()
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.index("## Context ablation") < report.index("## Notes")
    splice_report(tmp_path / "out" / "report.md")  # again, as `evaluate` does: the same text
    assert (tmp_path / "out" / "report.md").read_text() == report
