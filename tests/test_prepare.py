"""The real-data adapter: raw clickstream → the common CSV, its sessionisation and its stats."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pytest import MonkeyPatch
from typer.testing import CliRunner

from model.data import raw_scan
from model.data.prepare import _in_session_order, prepare
from model.data.raw_events import _first_rows
from model.data.sources import TAOBAO, SourceSpec, build_spec
from tests.cli_support import prepare_cli

T0 = 1_511_600_000  # 2017-11-25 08:53:20 UTC, inside the Taobao window
GENERIC_FLAGS = [
    "--user-col", "visitorid", "--ts-col", "timestamp", "--event-col", "event", "--ts-unit", "ms",
    "--map", "view=view_product", "--map", "addtocart=add_cart", "--map", "transaction=order",
]  # fmt: skip


def _taobao_sample(shared_data_dir: Path | None) -> Path:
    """The real sample from SI_SHARED_DATA (the folder holding taobao_userbehavior/) or ../shared/data."""
    root = Path(os.environ["SI_SHARED_DATA"]) if os.environ.get("SI_SHARED_DATA") else shared_data_dir
    sample = root / "taobao_userbehavior" / "small_sample.csv" if root is not None else None
    if sample is None or not sample.is_file():
        pytest.skip("real Taobao sample not found: set SI_SHARED_DATA or put ../shared/data beside the repo")
    return sample


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _read(path: Path) -> list[tuple[str, str, str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        assert next(reader)[:4] == ["session_id", "ts", "action", "from_ad"]  # then the optional id columns
        return [(r[0], r[1], r[2], r[3]) for r in reader]


def _generic(**overrides: object) -> SourceSpec:
    fields: dict[str, object] = {
        "user_col": "visitorid",
        "ts_col": "timestamp",
        "event_col": "event",
        "action_map": {"view": "view_product", "addtocart": "add_cart", "transaction": "order"},
    }
    return build_spec("generic", **{**fields, **overrides})


# (a) the real sample reproduces the data README's stats.json


def test_taobao_sample_reproduces_stats_json(shared_data_dir: Path | None, tmp_path: Path) -> None:
    sample = _taobao_sample(shared_data_dir)
    expected = json.loads((sample.parent / "stats.json").read_text())
    stats = prepare(TAOBAO, [sample], tmp_path / "taobao.csv").to_dict()

    assert Path(stats["inputs"][0]).name == Path(expected["inputs"][0]).name
    assert {k: stats[k] for k in expected if k != "inputs"} == {k: v for k, v in expected.items() if k != "inputs"}
    rows = _read(tmp_path / "taobao.csv")
    assert len(rows) == expected["all_sessions"]["events"]
    assert rows[0] == ("1_0", "1511544070", "view_product", "")  # first row of the official file


def test_taobao_sample_without_window_matches_readme(shared_data_dir: Path | None) -> None:
    sample = _taobao_sample(shared_data_dir)
    stats = prepare(replace(TAOBAO, ts_range=None), [sample])
    assert (stats.all_sessions.sessions, stats.sessions_3_to_250_events.sessions) == (16_757, 9_109)
    assert stats.dropped_outside_ts_range == 0
    assert stats.ts_min_utc == "2017-09-11T08:16:39+00:00"  # the README's known dirt


# (b) hand-written raw files


def test_gap_of_exactly_30_minutes_stays_in_the_session_and_one_second_more_splits(tmp_path: Path) -> None:
    raw = _write(
        tmp_path / "raw.csv",
        [
            "visitorid,event,timestamp",
            f"b,view,{T0 + 1800 + 1801}",  # out of order on purpose: sorting is the adapter's job
            f"a,view,{T0}",
            f"b,view,{T0}",
            f"b,addtocart,{T0 + 1800}",  # exactly 30 min after the previous: same session
            f"a,transaction,{T0}",  # a tie with a's first event: keeps file order
        ],
    )
    stats = prepare(_generic(), [raw], tmp_path / "out.csv")
    assert _read(tmp_path / "out.csv") == [
        ("b_0", str(T0), "view_product", ""),
        ("b_0", str(T0 + 1800), "add_cart", ""),
        ("b_1", str(T0 + 3601), "view_product", ""),  # 30 min + 1 s later: a new session
        ("a_0", str(T0), "view_product", ""),
        ("a_0", str(T0), "order", ""),
    ]
    assert stats.all_sessions.sessions == 3
    assert stats.all_sessions.pct_sessions_cart_abandoned == 33.33


def test_curated_stats_keep_sessions_of_3_to_250_events(tmp_path: Path) -> None:
    rows = ["visitorid,event,timestamp"]
    for user, length in (("two", 2), ("three", 3), ("max", 250), ("over", 251)):
        rows += [f"{user},{'transaction' if i == 0 else 'view'},{T0 + i}" for i in range(length)]
    stats = prepare(_generic(), [_write(tmp_path / "raw.csv", rows)])
    curated = stats.sessions_3_to_250_events
    assert (curated.sessions, curated.events, curated.pct_sessions_with_order) == (2, 253, 100.0)
    assert (stats.all_sessions.sessions, stats.all_sessions.median_events_per_session) == (4, 126.5)


def test_gap_minutes_is_a_setting(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw.csv", ["visitorid,event,timestamp", f"a,view,{T0}", f"a,view,{T0 + 301}"])
    assert prepare(_generic(gap_minutes=5), [raw]).all_sessions.sessions == 2
    assert prepare(_generic(gap_minutes=6), [raw]).all_sessions.sessions == 1


def test_ms_timestamps_split_on_the_exact_gap(tmp_path: Path) -> None:
    ms = T0 * 1000
    raw = _write(
        tmp_path / "raw.csv",
        ["visitorid,event,timestamp", f"a,view,{ms}", f"a,view,{ms + 1_800_000}", f"a,view,{ms + 3_600_001}"],
    )
    prepare(_generic(ts_unit="ms"), [raw], tmp_path / "out.csv")
    assert [(sid, ts) for sid, ts, _, _ in _read(tmp_path / "out.csv")] == [
        ("a_0", f"{T0}.000"),
        ("a_0", f"{T0 + 1800}.000"),
        ("a_1", f"{T0 + 3600}.001"),  # 30 min + 1 ms: a new session
    ]


def test_ms_timestamps_read_as_seconds_are_refused_with_a_hint(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw.csv", ["visitorid,event,timestamp", f"a,view,{T0}000", f"a,view,{T0}500"])
    with pytest.raises(ValueError, match=r"'timestamp' read as --ts-unit s .* past the year 2200 .*--ts-unit ms"):
        prepare(_generic(ts_range=None), [raw], tmp_path / "out.csv")


def test_whole_second_ms_timestamps_are_written_as_integers(tmp_path: Path) -> None:
    raw = _write(tmp_path / "raw.csv", ["visitorid,event,timestamp", f"a,view,{T0}000"])
    prepare(_generic(ts_unit="ms"), [raw], tmp_path / "out.csv")
    assert _read(tmp_path / "out.csv")[0][1] == str(T0)


def test_ts_range_is_half_open_and_drops_are_counted(tmp_path: Path) -> None:
    lo, hi = TAOBAO.ts_range or (0, 0)
    raw = _write(
        tmp_path / "raw.csv",
        [f"1,11,111,pv,{lo - 1}", f"1,11,111,pv,{lo}", f"1,11,111,cart,{hi - 1}", f"1,11,111,buy,{hi}"],
    )
    stats = prepare(replace(TAOBAO, gap_minutes=1e6), [raw], tmp_path / "out.csv")
    assert [ts for _, ts, _, _ in _read(tmp_path / "out.csv")] == [str(lo), str(hi - 1)]
    assert stats.dropped_outside_ts_range == 2
    assert stats.raw_event_types == {"pv": 2, "cart": 1, "buy": 1}
    assert stats.ts_min_utc == "2017-11-24T16:00:00+00:00"


def test_unmapped_types_are_skipped_and_reported_never_mapped(tmp_path: Path) -> None:
    raw = _write(
        tmp_path / "raw.csv",
        ["visitorid,event,timestamp", f"a,view,{T0}", f"a,removefromcart,{T0 + 1}", f"a,wishlist,{T0 + 2}"],
    )
    stats = prepare(_generic(), [raw], tmp_path / "out.csv")
    assert stats.skipped == {"removefromcart": 1, "wishlist": 1}
    assert stats.raw_event_types == {"view": 1, "removefromcart": 1, "wishlist": 1}
    assert stats.action_counts == {"view_product": 1}
    assert [action for _, _, action, _ in _read(tmp_path / "out.csv")] == ["view_product"]


def test_custom_columns_positions_iso_from_ad_and_own_sessions(tmp_path: Path) -> None:
    raw = _write(
        tmp_path / "raw.tsv",
        [
            "2017-11-25T10:00:05+08:00\tS1\tCLICK\tyes",
            "2017-11-25T10:00:00\tS1\tBASKET\t",  # no offset: read in the shop's zone
            "2017-11-25T12:00:00+08:00\tS1\tCLICK\tno",  # 2 h later, but the source's session rules
            "2017-11-25T10:00:00+08:00",  # too few columns
            "not-a-time\tS2\tCLICK\t1",
        ],
    )
    spec = SourceSpec(
        name="shop2",
        user_col=None,
        session_col=1,
        ts_col=0,
        event_col=2,
        from_ad_col=3,
        action_map={"CLICK": "view_product", "BASKET": "add_cart"},
        has_header=False,
        delimiter="\t",
        ts_unit="iso",
        timezone="Asia/Shanghai",
    )
    stats = prepare(spec, [raw], tmp_path / "out.csv")
    ten_am = 1_511_575_200  # 2017-11-25T10:00:00+08:00
    assert _read(tmp_path / "out.csv") == [
        ("S1", str(ten_am), "add_cart", ""),
        ("S1", str(ten_am + 5), "view_product", "1"),
        ("S1", str(ten_am + 7200), "view_product", "0"),
    ]
    assert stats.session_mode == "column" and stats.gap_minutes is None
    assert stats.malformed == {"too_few_columns": 1, "bad_timestamp": 1}


def test_several_inputs_are_one_log(tmp_path: Path) -> None:
    first = _write(tmp_path / "part1.csv", ["visitorid,event,timestamp", f"a,view,{T0}"])
    second = _write(tmp_path / "part2.csv", ["timestamp,event,visitorid", f"{T0 + 60},transaction,a"])
    stats = prepare(_generic(), [first, second], tmp_path / "out.csv")
    assert [sid for sid, _, _, _ in _read(tmp_path / "out.csv")] == ["a_0", "a_0"]
    assert stats.inputs == [str(first), str(second)]


def test_pieces_shorter_than_a_line_and_a_last_line_without_its_end(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    # one line per piece: pieces whose types and from_ad texts are all known (coded by Enum lookup) and pieces
    # with "wish" or "true" (coded through their distinct texts) are one log
    events, flags = ("view", "addtocart", "transaction", "wish"), ("1", "0", "", "true")
    rows = [f"user{i % 3},{events[i % 4]},{T0 + 60 * i},{flags[i // 3 % 4]}" for i in range(40)]
    raw = tmp_path / "raw.csv"
    raw.write_text("\n".join(["visitorid,event,timestamp,ad", *rows]), encoding="utf-8")  # no end after the last
    spec = _generic(from_ad_col="ad")
    whole = prepare(spec, [raw], tmp_path / "whole.csv")
    monkeypatch.setattr(raw_scan, "CHUNK_BYTES", 7)
    pieces = prepare(spec, [raw], tmp_path / "pieces.csv")
    assert (tmp_path / "pieces.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert pieces == whole
    assert (whole.rows_read, whole.skipped) == (40, {"wish": 10})
    assert {ad for _, _, _, ad in _read(tmp_path / "whole.csv")} == {"1", "0", ""}


def test_session_order_is_the_three_key_sort_whether_or_not_the_log_is_already_in_it() -> None:
    rng = np.random.default_rng(0)
    n = 5_000
    first = pl.Series(rng.integers(0, 300, n)).cast(pl.UInt32)
    frame = pl.DataFrame({
        "row": np.arange(n, dtype=np.uint32), "ticks": rng.integers(-50, 50, n),  # many ties
    }).with_columns(first_row=pl.col("row").min().over(first))  # fmt: skip
    expected = frame.sort("first_row", "ticks", "row")
    assert _in_session_order(frame).equals(expected)
    assert _in_session_order(expected).equals(expected)  # already in order: kept as it is
    assert _in_session_order(frame.head(1)).equals(frame.head(1))


@pytest.mark.parametrize("run", [1, 7])  # users interleaved row by row; in runs of 7 rows
def test_first_rows_are_each_keys_first_row(run: int) -> None:
    keys = np.random.default_rng(1).integers(0, 50, 400).repeat(run)
    frame = pl.DataFrame({"row": np.arange(len(keys), dtype=np.uint32), "key": [f"u{k}" for k in keys]})
    frame = frame.with_columns(pl.col("key").cast(pl.Categorical))
    assert _first_rows(frame).to_list() == frame.select(pl.col("row").min().over("key"))["row"].to_list()


def test_bad_specs_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="view_cart"):  # the message lists the 12 valid actions
        _generic(action_map={"view": "viewing"})
    with pytest.raises(ValueError, match="--user-col"):
        build_spec("generic", ts_col="t", event_col="e", action_map={"v": "view_product"})
    with pytest.raises(ValueError, match="unknown source"):
        build_spec("amazon")


# (c) the CLI end to end


def test_cli_prepare_generic_writes_csv_stats_and_table(tmp_path: Path) -> None:
    raw = _write(
        tmp_path / "events.csv",
        [
            "timestamp,visitorid,event,itemid",
            f"{T0}000,7,view,1",
            f"{T0 + 60}000,7,addtocart,1",
            f"{T0 + 120}500,7,view,2",
            f"{T0}000,8,removefromcart,3",
        ],
    )
    out, stats_json = tmp_path / "new" / "dir" / "events.csv", tmp_path / "reports" / "stats.json"
    args = ["prepare", "--source", "generic", *GENERIC_FLAGS, "-i", str(raw), "-o", str(out)]
    result = CliRunner().invoke(prepare_cli(), [*args, "--stats-json", str(stats_json)])

    assert result.exit_code == 0, result.output
    assert "sessions with 3–250 events" in result.output
    assert "removefromcart 1" in result.output
    assert _read(out) == [
        ("7_0", f"{T0}.000", "view_product", ""),
        ("7_0", f"{T0 + 60}.000", "add_cart", ""),
        ("7_0", f"{T0 + 120}.500", "view_product", ""),
    ]
    stats = json.loads(stats_json.read_text())
    assert stats["sessions_3_to_250_events"]["pct_sessions_cart_abandoned"] == 100.0
    assert stats["skipped"] == {"removefromcart": 1}


def test_cli_prepare_taobao_matches_stats_json(shared_data_dir: Path | None, tmp_path: Path) -> None:
    sample = _taobao_sample(shared_data_dir)
    args = ["prepare", "--source", "taobao", "-i", str(sample), "-o", str(tmp_path / "t.csv")]
    result = CliRunner().invoke(prepare_cli(), [*args, "--stats-json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    expected = json.loads((sample.parent / "stats.json").read_text())
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["all_sessions"] == expected["all_sessions"]
    assert "16,724" in result.output and "9,108" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--user-col"),
        ([*GENERIC_FLAGS, "--map", "view=viewing"], "view_product"),
        ([*GENERIC_FLAGS, "--ts-unit", "days"], "ts_unit"),
    ],
)
def test_cli_prepare_refuses_bad_flags(tmp_path: Path, extra: list[str], message: str) -> None:
    raw = _write(tmp_path / "events.csv", ["timestamp,visitorid,event", f"{T0}000,7,view"])
    args = ["prepare", "-i", str(raw), "-o", str(tmp_path / "out.csv"), *extra]
    result = CliRunner().invoke(prepare_cli(), args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "out.csv").exists()
