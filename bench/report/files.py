"""What every benchmark report shares: its CSV, and the provenance lines at the top of its markdown."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_rows_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    """One row per dict, columns from the first; returns the path."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def provenance_lines(command: str, sharing: str | None = None) -> list[str]:
    """'Written by `command` at …' and, with `sharing`, the machine's cores and load: figures from a shared
    2-core machine mean little without them."""
    lines = [f"Written by `{command}` at {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Regenerate with the same command; "
             "never edit by hand.", ""]
    if sharing is None:
        return lines
    import psutil  # the dev extra; `bench data` writes no machine line and runs without it

    load = psutil.getloadavg()
    return [*lines, f"**Machine:** {psutil.cpu_count()} logical cores shared with other work (load average at the "
            f"end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}); {sharing}", ""]
