"""Event CSV → sessions → windows/targets, and the session-level splits (model/data/dataset.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.data.dataset import (
    BadEventFile,
    SessionClass,
    Split,
    abandonment_targets,
    cart_so_far,
    curate,
    load_dataset,
    prefix_targets,
    read_events_csv,
    session_classes,
    split_by_session,
    split_by_time,
)
from model.data.synth import generate_sessions, write_csv
from model.features import ACTION_INDEX, FeatureConfig

CSV = """session_id,ts,action,from_ad
b,100,view_product,
a,10,category,1
a,30,add_cart,0
b,50,home,
a,20,view_product,0
a,40,view_cart,
b,200,order,
c,5,search,
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(text)
    return path


def test_read_groups_by_session_and_sorts_by_ts(tmp_path: Path) -> None:
    sessions = read_events_csv(_write(tmp_path, CSV))
    assert sessions.ids.tolist() == ["b", "a", "c"]
    assert sessions.lengths.tolist() == [3, 4, 1]
    assert sessions.events.ts.tolist() == [50, 100, 200, 10, 20, 30, 40, 5]
    names = ["home", "view_product", "order", "category", "view_product", "add_cart", "view_cart", "search"]
    assert sessions.events.actions.tolist() == [ACTION_INDEX[n] for n in names]
    assert sessions.events.from_ad.tolist() == [False, False, False, True, False, False, False, False]


def test_targets_classes_and_cart_flags(tmp_path: Path) -> None:
    sessions = curate(read_events_csv(_write(tmp_path, CSV)))
    assert sessions.ids.tolist() == ["b", "a"]  # c has one event
    y = prefix_targets(sessions)
    # b: home, view_product, order | a: category, view_product, add_cart, view_cart
    assert y[:, 0].tolist() == [0, 0, 0, 1, 1, 0, 0]
    assert y[:, 1].tolist() == [1, 1, 0, 0, 0, 0, 0]
    assert cart_so_far(sessions).tolist() == [False, False, False, False, False, True, True]
    assert abandonment_targets(sessions).tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert session_classes(sessions).tolist() == [SessionClass.PURCHASE, SessionClass.CART_ABANDONMENT]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("session_id,ts\nx,1\n", "lacks ['action']"),
        ("session_id,ts,action,from_ad\nx,1,checkout,\n", "unknown action 'checkout'"),
        ("session_id,ts,action,from_ad\nx,yesterday,home,\n", ":2:"),
        ("session_id,ts,action,from_ad\nx,1,home,maybe\n", "from_ad must be"),
        ("session_id,ts,action,from_ad\n", "no events"),
    ],
)
def test_unusable_files_get_a_clear_message(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(BadEventFile, match=None) as info:
        read_events_csv(_write(tmp_path, text))
    assert needle in str(info.value)


def test_file_without_from_ad_column_is_accepted(tmp_path: Path) -> None:
    sessions = read_events_csv(_write(tmp_path, "session_id,ts,action\nx,1,home\nx,2,search\n"))
    assert not sessions.events.from_ad.any()


@pytest.fixture(scope="module")
def synth_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "synth.csv"
    write_csv(generate_sessions(3000, seed=7), path)
    return path


@pytest.mark.parametrize("splitter", [split_by_session, split_by_time])
def test_no_session_on_both_sides_of_a_split(synth_csv: Path, splitter: object) -> None:
    dataset = load_dataset(synth_csv, FeatureConfig(window=6))
    split = splitter(dataset.sessions)  # type: ignore[operator]
    windows = dataset.windows
    parts = [set(windows.session[split[windows.session] == s].tolist()) for s in Split]
    assert parts[0] and parts[1] and parts[2]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    ids_per_part = [set(dataset.sessions.ids[list(p)]) for p in parts]
    assert not (ids_per_part[0] & ids_per_part[2])


def test_session_split_is_stratified_by_class_and_deterministic(synth_csv: Path) -> None:
    dataset = load_dataset(synth_csv, FeatureConfig())
    split = split_by_session(dataset.sessions)
    assert np.array_equal(split, split_by_session(dataset.sessions))
    for cls in SessionClass:
        members = dataset.classes == cls
        test_share = (split[members] == Split.TEST).mean()
        assert abs(test_share - 0.15) < 0.02, (cls, test_share)


def test_time_split_puts_later_sessions_in_test(synth_csv: Path) -> None:
    dataset = load_dataset(synth_csv, FeatureConfig(), split_mode="time")
    start = dataset.sessions.events.ts[dataset.sessions.events.starts]
    assert start[dataset.split == Split.TRAIN].max() <= start[dataset.split == Split.TEST].min()


def test_windows_and_cache_round_trip(synth_csv: Path, tmp_path: Path) -> None:
    config = FeatureConfig(window=8)
    fresh = load_dataset(synth_csv, config, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("data-*"))) == 1
    cached = load_dataset(synth_csv, config, cache_dir=tmp_path)
    assert fresh.windows.X.shape == (len(fresh.sessions.events), 8, 16)
    np.testing.assert_array_equal(fresh.windows.X, cached.windows.X)
    np.testing.assert_array_equal(fresh.split, cached.split)
    load_dataset(synth_csv, FeatureConfig(window=4), cache_dir=tmp_path)
    assert len(list(tmp_path.glob("data-*"))) == 2  # the feature config is part of the key
