"""Event CSV → curated sessions → one (window, targets) sample per prefix, plus session-level splits.

The common CSV form is `session_id,ts,action,from_ad` (ts in epoch seconds, from_ad 1/0/empty).
Encoding goes through model/features.py, the same code serving uses.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np

from model.features import (
    ACTIONS,
    ADD_CART,
    ORDER,
    EventLog,
    FeatureConfig,
    action_index,
    layout_fingerprint,
    prefix_windows,
)

log = logging.getLogger(__name__)

MIN_EVENTS = 3
MAX_EVENTS = 250
CSV_COLUMNS = ("session_id", "ts", "action", "from_ad")
CACHE_VERSION = 1


class SessionClass(IntEnum):
    BROWSE = 0
    CART_ABANDONMENT = 1
    PURCHASE = 2


class Split(IntEnum):
    TRAIN = 0
    VAL = 1
    TEST = 2


class BadEventFile(ValueError):
    """The file cannot be used; the message says why and where."""


@dataclass(frozen=True)
class Sessions:
    """Sessions in CSV order of first appearance; events sorted by ts (stable) within each."""

    ids: np.ndarray  # (S,) str
    events: EventLog

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(S,) events per session."""
        return np.diff(np.append(self.events.starts, len(self.events)))

    def select(self, keep: np.ndarray) -> Sessions:
        """Sessions where the (S,) bool mask `keep` is true."""
        lengths = self.lengths
        event_keep = np.repeat(keep, lengths)
        kept_lengths = lengths[keep]
        starts = np.concatenate([[0], np.cumsum(kept_lengths)[:-1]]).astype(np.int64)
        events = EventLog(
            actions=self.events.actions[event_keep],
            ts=self.events.ts[event_keep],
            from_ad=self.events.from_ad[event_keep],
            starts=starts if kept_lengths.size else np.zeros(0, dtype=np.int64),
        )
        return Sessions(ids=self.ids[keep], events=events)


@dataclass(frozen=True)
class WindowSet:
    """One sample per prefix. X (n, N, 16) float32, Y (n, 2) float32 [add_cart, make_order] after it."""

    X: np.ndarray
    Y: np.ndarray
    session: np.ndarray  # (n,) ordinal into the Sessions the set was built from
    position: np.ndarray  # (n,) 0-based index of the prefix's last event within its session

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def take(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.X[mask], self.Y[mask], self.session[mask], self.position[mask])


def _parse_from_ad(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"from_ad must be 1/0/true/false or empty, got {raw!r}")


def _column(rows: list[list[str]], index: int | None, name: str, path: Path) -> list[str]:
    if index is None:
        return [""] * len(rows)
    try:
        return [row[index] for row in rows]
    except IndexError:
        bad = next(i for i, row in enumerate(rows) if len(row) <= index)
        raise BadEventFile(f"{path}:{bad + 2}: row has no {name} column") from None


def _parse_ts(raw: list[str], path: Path) -> np.ndarray:
    try:
        return np.fromiter(map(float, raw), dtype=np.float64, count=len(raw))
    except ValueError:
        for i, value in enumerate(raw):
            try:
                float(value)
            except ValueError:
                raise BadEventFile(f"{path}:{i + 2}: ts must be epoch seconds, got {value!r}") from None
        raise


def read_events_csv(path: Path) -> Sessions:
    """Read the common CSV form; a clear BadEventFile for anything it cannot use."""
    path = Path(path)
    if not path.is_file():
        raise BadEventFile(f"{path}: no such file")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise BadEventFile(f"{path}: empty file")
        columns = [c.strip() for c in header]
        missing = [c for c in CSV_COLUMNS[:3] if c not in columns]
        if missing:
            raise BadEventFile(
                f"{path}: header {columns} lacks {missing}; expected {','.join(CSV_COLUMNS)} "
                "(convert raw logs with `session-intent prepare`)"
            )
        rows = [row for row in reader if row]
    if not rows:
        raise BadEventFile(f"{path}: header only, no events")
    index = {name: columns.index(name) if name in columns else None for name in CSV_COLUMNS}
    codes: dict[str, int] = {}
    sids = _column(rows, index["session_id"], "session_id", path)
    sid_code = np.fromiter((codes.setdefault(sid, len(codes)) for sid in sids), dtype=np.int64, count=len(sids))
    ts = _parse_ts(_column(rows, index["ts"], "ts", path), path)
    actions = _codes(_column(rows, index["action"], "action", path), action_index, path, np.int8)
    from_ad = _codes(_column(rows, index["from_ad"], "from_ad", path), _parse_from_ad, path, bool)
    return _group_sessions(np.array(list(codes), dtype=object), sid_code, ts, actions, from_ad)


def _codes(raw: list[str], parse: Callable[[str], Any], path: Path, dtype: Any) -> np.ndarray:
    """Parse each distinct value once; the first bad value names its line."""
    distinct: dict[str, int] = {}
    inverse = np.fromiter((distinct.setdefault(v, len(distinct)) for v in raw), dtype=np.int64, count=len(raw))
    parsed = np.empty(len(distinct), dtype=dtype)
    for value, i in distinct.items():
        try:
            parsed[i] = parse(value)
        except ValueError as exc:
            raise BadEventFile(f"{path}:{raw.index(value) + 2}: {exc}") from None
    return parsed[inverse]


def _group_sessions(
    ids: np.ndarray, sid_code: np.ndarray, ts: np.ndarray, actions: np.ndarray, from_ad: np.ndarray
) -> Sessions:
    order = np.lexsort((ts, sid_code))  # by session (first appearance), then ts; stable on ties
    sid_sorted = sid_code[order]
    lengths = np.bincount(sid_sorted, minlength=len(ids))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    events = EventLog(actions=actions[order], ts=ts[order], from_ad=from_ad[order], starts=starts)
    return Sessions(ids=ids, events=events)


def curate(sessions: Sessions, min_events: int = MIN_EVENTS, max_events: int = MAX_EVENTS) -> Sessions:
    """Drop sessions with fewer than `min_events` or more than `max_events` events (docs/architecture.md §4)."""
    lengths = sessions.lengths
    return sessions.select((lengths >= min_events) & (lengths <= max_events))


def _count_per_session(sessions: Sessions, mask: np.ndarray) -> np.ndarray:
    return np.bincount(sessions.events.session_of_event(), weights=mask, minlength=len(sessions))


def session_classes(sessions: Sessions) -> np.ndarray:
    """(S,) SessionClass: purchase if any order, else cart_abandonment if any add_cart, else browse."""
    actions = sessions.events.actions
    orders = _count_per_session(sessions, actions == ORDER) > 0
    carts = _count_per_session(sessions, actions == ADD_CART) > 0
    classes = np.full(len(sessions), SessionClass.BROWSE, dtype=np.int8)
    classes[carts] = SessionClass.CART_ABANDONMENT
    classes[orders] = SessionClass.PURCHASE
    return classes


def prefix_targets(sessions: Sessions) -> np.ndarray:
    """(E, 2) float32: whether an add_cart / an order follows each event later in its session."""
    ev = sessions.events
    session_end = np.append(ev.starts[1:], len(ev)) - 1  # (S,)
    last = session_end[ev.session_of_event()]  # (E,)
    targets = np.empty((len(ev), 2), dtype=np.float32)
    for col, action in enumerate((ADD_CART, ORDER)):
        seen = np.cumsum(ev.actions == action)
        targets[:, col] = (seen[last] - seen) > 0
    return targets


def cart_so_far(sessions: Sessions) -> np.ndarray:
    """(E,) bool: an add_cart happened at or before each event in its session (`cart_has_items`)."""
    ev = sessions.events
    seen = np.cumsum(ev.actions == ADD_CART)
    before_session = np.concatenate([[0], seen])[ev.starts][ev.session_of_event()]  # (E,)
    return (seen - before_session) > 0


def abandonment_targets(sessions: Sessions) -> np.ndarray:
    """(E,) float32: the session ends with items in the cart and no order after the prefix.

    The event-level truth that `abandonment_risk` (model/risk.py) estimates: cart filled by now
    or later, and no order follows.
    """
    targets = prefix_targets(sessions)
    has_cart = cart_so_far(sessions) | (targets[:, 0] > 0)
    return (has_cart & (targets[:, 1] == 0)).astype(np.float32)


def build_windows(sessions: Sessions, config: FeatureConfig) -> WindowSet:
    """One window per prefix of every session (memory: E × N × 16 × 4 bytes)."""
    ev = sessions.events
    session = ev.session_of_event()
    position = np.arange(len(ev)) - ev.starts[session]
    return WindowSet(
        X=prefix_windows(ev, config),
        Y=prefix_targets(sessions),
        session=session.astype(np.int64),
        position=position.astype(np.int32),
    )


def _hash_unit(session_ids: np.ndarray, salt: str) -> np.ndarray:
    """(S,) a deterministic uniform number in [0, 1) per session id."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(f"{salt}:{sid}".encode(), digest_size=8).digest()) / 2**64
         for sid in session_ids],
        dtype=np.float64,
    )


def split_by_session(
    sessions: Sessions, val_frac: float = 0.15, test_frac: float = 0.15, salt: str = "si-split-v1"
) -> np.ndarray:
    """(S,) Split per session: ranked by a hash of its id within its class, so shares hold per class.

    Deterministic for a given file: `train` and `evaluate` recompute the same split from the data.
    """
    classes = session_classes(sessions)
    unit = _hash_unit(sessions.ids, salt)
    split = np.full(len(sessions), Split.TRAIN, dtype=np.int8)
    for cls in SessionClass:
        members = np.flatnonzero(classes == cls)
        ranked = members[np.argsort(unit[members], kind="stable")]
        n_test = round(len(ranked) * test_frac)
        n_val = round(len(ranked) * val_frac)
        split[ranked[:n_test]] = Split.TEST
        split[ranked[n_test : n_test + n_val]] = Split.VAL
    return split


def split_by_time(sessions: Sessions, val_frac: float = 0.15, test_frac: float = 0.15) -> np.ndarray:
    """(S,) Split by session start time: the latest `test_frac` of sessions test, the ones before val."""
    start_ts = sessions.events.ts[sessions.events.starts]
    rank = np.argsort(np.argsort(start_ts, kind="stable"), kind="stable") / max(len(sessions), 1)
    split = np.full(len(sessions), Split.TRAIN, dtype=np.int8)
    split[rank >= 1.0 - test_frac - val_frac] = Split.VAL
    split[rank >= 1.0 - test_frac] = Split.TEST
    return split


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """A curated event file, its windows and per-session labels and splits."""

    name: str
    sha256: str
    sessions: Sessions
    windows: WindowSet
    classes: np.ndarray  # (S,) SessionClass
    split: np.ndarray  # (S,) Split

    def part(self, which: Split) -> WindowSet:
        return self.windows.take(self.split[self.windows.session] == which)


def _cache_path(cache_dir: Path, sha: str, config: FeatureConfig, split_mode: str) -> Path:
    key = f"{sha}:{config.to_dict()}:{layout_fingerprint()}:{split_mode}:{MIN_EVENTS}-{MAX_EVENTS}:v{CACHE_VERSION}"
    return cache_dir / f"windows-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


def load_dataset(
    path: Path, config: FeatureConfig, split_mode: str = "session", cache_dir: Path | None = None
) -> Dataset:
    """Read, curate, window and split `path`; cached as .npz keyed by file hash, N and fingerprint."""
    path = Path(path)
    sha = file_sha256(path)
    cache = _cache_path(cache_dir, sha, config, split_mode) if cache_dir else None
    if cache and cache.is_file():
        log.info("windows from cache %s", cache)
        with np.load(cache, allow_pickle=True) as z:
            events = EventLog(z["actions"], z["ts"], z["from_ad"], z["starts"])
            sessions = Sessions(ids=z["ids"], events=events)
            windows = WindowSet(z["X"], z["Y"], z["session"], z["position"])
            return Dataset(path.stem, sha, sessions, windows, z["classes"], z["split"])
    sessions = curate(read_events_csv(path))
    if len(sessions) == 0:
        raise BadEventFile(f"{path}: no session has {MIN_EVENTS}..{MAX_EVENTS} events")
    splitter = {"session": split_by_session, "time": split_by_time}.get(split_mode)
    if splitter is None:
        raise ValueError(f"split mode must be 'session' or 'time', got {split_mode!r}")
    dataset = Dataset(
        name=path.stem,
        sha256=sha,
        sessions=sessions,
        windows=build_windows(sessions, config),
        classes=session_classes(sessions),
        split=splitter(sessions),
    )
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        ev, w = sessions.events, dataset.windows
        np.savez(
            cache, ids=sessions.ids, actions=ev.actions, ts=ev.ts, from_ad=ev.from_ad, starts=ev.starts,
            X=w.X, Y=w.Y, session=w.session, position=w.position, classes=dataset.classes, split=dataset.split,
        )
    return dataset


def slot_coverage(sessions: Sessions) -> dict[str, int]:
    """Events per action slot: which parts of the input space the data covered."""
    counts = np.bincount(sessions.events.actions.astype(np.int64), minlength=len(ACTIONS))
    return {name: int(c) for name, c in zip(ACTIONS, counts, strict=True)}
