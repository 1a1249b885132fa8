"""bench/report/plots.py: every benchmark's figure is drawn off-screen, written, and closed (none left open)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report.plots import save_figure, subplots


def test_a_figure_is_written_at_its_dpi_and_closed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, (top, bottom) = subplots(2, 1, figsize=(4, 3), sharex=True)
    top.plot([0, 1], [0, 1])
    bottom.plot([0, 1], [1, 0])
    assert matplotlib.get_backend().lower() == "agg"
    path = save_figure(fig, tmp_path / "f.png", dpi=50)
    assert path == tmp_path / "f.png"
    assert Image.open(path).size == (200, 150)  # 4 × 3 in at 50 dpi
    assert not plt.fignum_exists(fig.number)  # closed: a long bench writing many reports holds none
