"""Optional ids through the data pipeline: prepare keeps them, the reader codes them, a log without them works."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.context import CONTEXT_NAMES, CONTEXT_SETS
from model.data.dataset import load_dataset
from model.data.prepare import prepare
from model.data.reader import read_events
from model.data.sources import build_spec
from model.features import FeatureConfig

RAW = """visitorid,timestamp,event,itemid,cat
u1,1000,view,10,1
u1,1010,addtocart,10,1
u1,1020,view,11,2
u2,1000,view,10,1
u2,1005,view,12,1
u2,1009,view,12,1
u1,9000,view,10,1
u1,9010,transaction,10,1
u1,9020,view,13,
"""
MAP = {"view": "view_product", "addtocart": "add_cart", "transaction": "order"}


def _prepare(tmp_path: Path, **cols: str) -> Path:
    (tmp_path / "raw.csv").write_text(RAW)
    spec = build_spec("generic", user_col="visitorid", ts_col="timestamp", event_col="event", action_map=MAP, **cols)
    prepare(spec, [tmp_path / "raw.csv"], tmp_path / "common.csv")
    return tmp_path / "common.csv"


def test_generic_prepare_keeps_user_item_and_category(tmp_path: Path) -> None:
    common = _prepare(tmp_path, item_col="itemid", category_col="cat")
    lines = common.read_text().splitlines()
    assert lines[0] == "session_id,ts,action,from_ad,user_id,item_id,category_id"
    assert lines[1:4] == [
        "u1_0,1000,view_product,,u1,10,1",
        "u1_0,1010,add_cart,,u1,10,1",
        "u1_0,1020,view_product,,u1,11,2",
    ]
    assert lines[-1] == "u2_0,1009,view_product,,u2,12,1"
    assert "u1_1,9020,view_product,,u1,13," in lines  # an empty category stays empty


def test_context_from_a_prepared_log_sees_the_earlier_session(tmp_path: Path) -> None:
    dataset = load_dataset(_prepare(tmp_path, item_col="itemid", category_col="cat"), FeatureConfig())
    windows = dataset.windows
    context = windows.contexts(slice(None), CONTEXT_NAMES)
    second = np.flatnonzero(dataset.sessions.ids == "u1_1")[0]
    rows = windows.session == second
    col = {n: context[rows][:, CONTEXT_NAMES.index(n)].tolist() for n in CONTEXT_NAMES}
    assert col["hist_sessions"] == [1, 1, 1] and col["hist_carts"] == [1, 1, 1] and col["hist_events"] == [3, 3, 3]
    assert col["hist_cart_items_open"] == [1, 1, 1] and col["item_in_hist_cart"] == [1, 1, 0]
    assert col["hist_gap_seconds"] == [9000 - 1020] * 3
    assert col["distinct_categories"] == [1, 1, 1]


def test_a_log_without_ids_still_loads_with_context_at_its_defaults(tmp_path: Path) -> None:
    common = _prepare(tmp_path)  # user column only: the user is still kept
    assert common.read_text().splitlines()[0] == "session_id,ts,action,from_ad,user_id"
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(line.rsplit(",", 1)[0] for line in common.read_text().splitlines()) + "\n")
    assert read_events(bare).context_ids.users is None
    dataset = load_dataset(bare, FeatureConfig())
    context = dataset.windows.contexts(slice(None), CONTEXT_SETS["history"])
    assert context.shape == (len(dataset.windows), len(CONTEXT_SETS["history"])) and not context.any()
    assert dataset.windows.contexts(slice(None), ()).shape == (len(dataset.windows), 0)


def test_a_session_column_keeps_the_user_column_as_the_user(tmp_path: Path) -> None:
    (tmp_path / "raw.csv").write_text("sid,uid,t,e\ns1,u,1,view\ns1,u,2,view\ns2,u,5000,view\n")
    spec = build_spec("generic", session_col="sid", user_col="uid", ts_col="t", event_col="e", action_map=MAP)
    prepare(spec, [tmp_path / "raw.csv"], tmp_path / "common.csv")
    assert (tmp_path / "common.csv").read_text().splitlines() == [
        "session_id,ts,action,from_ad,user_id", "s1,1,view_product,,u", "s1,2,view_product,,u",
        "s2,5000,view_product,,u",
    ]  # fmt: skip
    users = read_events(tmp_path / "common.csv").context_ids.users
    assert users is not None and users[0] == users[1] >= 0
