"""What every benchmark's plot shares: a figure on the Agg backend (no display), laid out, saved and closed.

matplotlib is the dev extra: it is imported here, when a report is written, never when a command loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def subplots(*grid: int, **kwargs: Any) -> tuple[Figure, Any]:
    """matplotlib's `pyplot.subplots(*grid, **kwargs)` on the Agg backend: (figure, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*grid, **kwargs)


def save_figure(fig: Figure, path: Path, dpi: int = 100) -> Path:
    """Lay out, write `path` and close the figure (pyplot keeps every open figure alive); returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
