"""Compact training data (issue 13): gathered windows equal `prefix_windows`, the cache, Parquet input,
a mapping error that names its column, and the shared Taobao sample unchanged bit for bit."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import model.data.dataset as dataset_module
from model.data.compact import encode_compact, gather_windows
from model.data.dataset import build_windows, curate, load_dataset, prefix_targets, read_events_csv
from model.data.prepare import prepare
from model.data.sources import TAOBAO, SourceSpec
from model.data.synth import generate_sessions, write_csv
from model.features import ACTION_INDEX, FeatureConfig, prefix_windows
from tests.cli_support import prepare_cli


@pytest.fixture(scope="module")
def synth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compact") / "synth.csv"
    write_csv(generate_sessions(600, seed=5), path)
    return path


@pytest.mark.parametrize(
    "config",
    [FeatureConfig(window=10), FeatureConfig(window=1), FeatureConfig(timezone="Europe/Berlin", window=32)],
)
def test_gathered_windows_equal_prefix_windows_bit_for_bit(synth_csv: Path, config: FeatureConfig) -> None:
    sessions = curate(read_events_csv(synth_csv))
    expected = prefix_windows(sessions.events, config)  # (E, N, 16): the one definition
    # chunks far smaller than the log: session-aligned encoding must not change a single bit
    encoded = encode_compact(sessions.events, config, chunk=997)
    windows = build_windows(sessions, config, encoded)
    assert windows.X.dtype == expected.dtype and windows.X.tobytes() == expected.tobytes()
    rows = np.random.default_rng(0).permutation(len(windows))[:500]
    batch = gather_windows(encoded, windows.rows[rows], windows.position[rows], config.window)
    assert batch.tobytes() == expected[rows].tobytes()
    assert windows.Y.tobytes() == prefix_targets(sessions).tobytes()


def test_cache_is_reused_and_invalidated(synth_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "events.csv"
    data.write_bytes(synth_csv.read_bytes())
    config = FeatureConfig(window=6)
    fresh = load_dataset(data, config, cache_dir=tmp_path / "cache")
    assert isinstance(fresh.windows.context, np.memmap)  # the first run trains on the cache it wrote, too
    plain = load_dataset(data, config)  # no cache: every array in memory
    assert fresh.windows.X.tobytes() == plain.windows.X.tobytes()
    assert fresh.windows.Y.tobytes() == plain.windows.Y.tobytes()
    assert fresh.windows.context.tobytes() == plain.windows.context.tobytes()  # type: ignore[union-attr]
    np.testing.assert_array_equal(fresh.split, plain.split)
    np.testing.assert_array_equal(fresh.sessions.ids, plain.sessions.ids)
    folders = list((tmp_path / "cache").iterdir())
    assert len(folders) == 1

    def no_reading(path: Path) -> None:
        raise AssertionError(f"read {path} although the cache holds it")

    with monkeypatch.context() as patch:
        patch.setattr(dataset_module, "read_events", no_reading)
        cached = load_dataset(data, config, cache_dir=tmp_path / "cache")
    assert isinstance(cached.windows.events.dwell, np.memmap)  # memory-mapped, not loaded
    assert cached.windows.X.tobytes() == fresh.windows.X.tobytes()
    assert cached.windows.Y.tobytes() == fresh.windows.Y.tobytes()
    np.testing.assert_array_equal(cached.sessions.ids, fresh.sessions.ids)
    np.testing.assert_array_equal(cached.split, fresh.split)
    np.testing.assert_array_equal(cached.windows.context, fresh.windows.context)  # the context and its ids too
    np.testing.assert_array_equal(cached.sessions.context_ids.users, fresh.sessions.context_ids.users)  # type: ignore[arg-type]

    load_dataset(data, FeatureConfig(window=6, timezone="Asia/Tokyo"), cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the feature config is in the key
    with data.open("a") as fh:
        # the synthetic CSV carries user_id,item_id,category_id after from_ad
        fh.write("late-session,1791158430,home,,u,,\nlate-session,1791158431,search,,u,,\nlate-session,1791158432,home,,u,,\n")
    grown = load_dataset(data, config, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 3  # so is the data's hash
    assert len(grown.sessions) == len(fresh.sessions) + 1


def test_parquet_input_reads_like_csv(synth_csv: Path, tmp_path: Path) -> None:
    parquet = tmp_path / "events.parquet"
    pl.read_csv(synth_csv, infer_schema=False).write_parquet(parquet)
    from_csv, from_parquet = read_events_csv(synth_csv), read_events_csv(parquet)
    np.testing.assert_array_equal(from_csv.ids, from_parquet.ids)
    for name in ("actions", "ts", "from_ad", "starts"):
        np.testing.assert_array_equal(getattr(from_csv.events, name), getattr(from_parquet.events, name))


def test_prepare_reads_a_parquet_export(tmp_path: Path) -> None:
    raw = pl.DataFrame(
        {"visitor": ["a", "b", "a", "a"], "t": [20, 5, 10, 4000], "kind": ["buy", "view", "view", "view"]}
    )
    raw.write_parquet(tmp_path / "raw.parquet")
    spec = SourceSpec(
        name="shop", user_col="visitor", ts_col="t", event_col="kind",
        action_map={"view": "view_product", "buy": "order"},
    )  # fmt: skip
    stats = prepare(spec, [tmp_path / "raw.parquet"], tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "session_id,ts,action,from_ad,user_id", "a_0,10,view_product,,a", "a_0,20,order,,a",
        "a_1,4000,view_product,,a", "b_0,5,view_product,,b",
    ]  # fmt: skip
    assert stats.all_sessions.sessions == 3



def test_a_mapping_error_names_the_bad_column(tmp_path: Path) -> None:
    raw = tmp_path / "events.csv"
    raw.write_text("timestamp,visitorid,event\n1511600000,7,view\n")
    args = ["prepare", "-i", str(raw), "-o", str(tmp_path / "out.csv"), "--user-col", "visitor_id",
            "--ts-col", "timestamp", "--event-col", "event", "--map", "view=view_product"]  # fmt: skip
    result = CliRunner().invoke(prepare_cli(), args)
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "'visitor_id'" in message and "visitorid" in message  # the bad name, and the names there are
    assert not (tmp_path / "out.csv").exists()


def _taobao_sample(shared_data_dir: Path | None) -> Path:
    root = Path(os.environ["SI_SHARED_DATA"]) if os.environ.get("SI_SHARED_DATA") else shared_data_dir
    sample = root / "taobao_userbehavior" / "small_sample.csv" if root is not None else None
    if sample is None or not sample.is_file():
        pytest.skip("real Taobao sample not found: set SI_SHARED_DATA or put ../shared/data beside the repo")
    return sample


def _reference_events(path: Path) -> tuple[list[str], list[list[tuple[float, int, bool]]]]:
    """The common CSV grouped with the csv module and plain Python: first appearance, stable sort by ts."""
    groups: dict[str, list[tuple[float, int, bool]]] = defaultdict(list)
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            groups[row["session_id"]].append((float(row["ts"]), ACTION_INDEX[row["action"]], row["from_ad"] == "1"))
    return list(groups), [sorted(events, key=lambda e: e[0]) for events in groups.values()]


def test_taobao_sample_windows_and_targets_unchanged(shared_data_dir: Path | None, tmp_path: Path) -> None:
    common = tmp_path / "taobao.csv"
    prepare(TAOBAO, [_taobao_sample(shared_data_dir)], common)
    ids, events = _reference_events(common)
    sessions = read_events_csv(common)
    assert sessions.ids.tolist() == ids
    flat = [e for session in events for e in session]
    assert sessions.events.ts.tolist() == [e[0] for e in flat]
    assert sessions.events.actions.tolist() == [e[1] for e in flat]
    config = FeatureConfig(timezone="Asia/Shanghai", window=10)
    dataset = load_dataset(common, config, cache_dir=tmp_path / "cache")
    assert dataset.windows.X.tobytes() == prefix_windows(dataset.sessions.events, config).tobytes()
    assert dataset.windows.Y.tobytes() == prefix_targets(dataset.sessions).tobytes()
    assert (len(dataset.sessions), len(dataset.windows)) == (9_108, 89_957)  # stats.json's curated counts
