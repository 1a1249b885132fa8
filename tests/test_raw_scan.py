"""Raw files read in pieces (model/data/raw_scan.py): piece boundaries change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import model.data.raw_scan as raw_scan
from model.data.prepare import prepare
from model.data.sources import SourceSpec

T0 = 1_511_600_000
SPEC = SourceSpec(
    name="shop", user_col="user", ts_col="ts", event_col="event", from_ad_col="ad",
    action_map={"view": "view_product", "cart": "add_cart", "buy": "order"},
)  # fmt: skip


def _raw(path: Path) -> Path:
    rows = ["user,ts,event,ad"]
    for i in range(300):
        user = f"u{i % 17}"
        if i % 41 == 0:
            rows.append("")  # a blank line: no event, no error
        elif i % 53 == 0:
            rows.append(f"{user},{T0 + i}")  # too few columns
        elif i % 59 == 0:
            rows.append(f",{T0 + i},view,1")  # empty id
        else:
            event, ad = ("view", "cart", "buy", "wish")[i % 4], ("1", "0", "", "maybe")[i % 4]
            rows.append(f"{user},{T0 + 60 * i},{event},{ad}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("piece_bytes", [64, 1000])
def test_pieces_of_any_size_give_the_same_output_and_counts(
    tmp_path: Path, piece_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = _raw(tmp_path / "raw.csv")
    whole = prepare(SPEC, [raw], tmp_path / "whole.csv")
    monkeypatch.setattr(raw_scan, "CHUNK_BYTES", piece_bytes)
    pieces = prepare(SPEC, [raw], tmp_path / "pieces.csv")
    assert (tmp_path / "pieces.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert pieces == whole
    assert whole.malformed == {"too_few_columns": 5, "empty_id": 5}  # i = 53k; i = 59k (0 is blank)
    assert whole.rows_read == 300
    assert whole.skipped == {"wish": sum(1 for i in range(300) if i % 4 == 3 and i % 41 and i % 53 and i % 59)}
