"""Event file → curated sessions → one (window, targets) sample per prefix, plus session-level splits.

The common form is `session_id,ts,action,from_ad` (ts in epoch seconds, from_ad 1/0/empty), as CSV
or Parquet (model/data/reader.py). Encoding goes through model/features.py, the same code serving
uses; windows are gathered per batch from 6 bytes per event (model/data/compact.py), never held
as one (P, N, 16) tensor unless a caller asks for `WindowSet.X`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from pathlib import Path

import numpy as np

from model.context import compute_context, context_columns
from model.data.cache import cache_folder, cache_key, load_cache, save_cache
from model.data.compact import EncodedEvents, WindowView, encode_compact, gather_windows

# CSV_COLUMNS, BadEventFile and Sessions are re-exported: callers import them from here.
from model.data.reader import CSV_COLUMNS as CSV_COLUMNS
from model.data.reader import read_events
from model.data.sessions import BadEventFile as BadEventFile
from model.data.sessions import Sessions as Sessions
from model.features import ACTIONS, ADD_CART, ORDER, FeatureConfig

log = logging.getLogger(__name__)

MIN_EVENTS = 3
MAX_EVENTS = 250


class SessionClass(IntEnum):
    BROWSE = 0
    CART_ABANDONMENT = 1
    PURCHASE = 2


class Split(IntEnum):
    TRAIN = 0
    VAL = 1
    TEST = 2


@dataclass(frozen=True)
class ContextRows:
    """Context rows that replace the shared context array's at gather time, leaving the array itself untouched
    (it is shared by every part of a Dataset): context dropout's id-less rows (model/training/id_dropout.py).

    events (m,) int64 sorted event indices; values (m, CONTEXT_DIM) float32, their replacement rows.
    """

    events: np.ndarray
    values: np.ndarray

    def patch(self, out: np.ndarray, rows: np.ndarray, columns: np.ndarray | list[int]) -> None:
        """Overwrite in place the rows of `out` (b, k), gathered from events `rows` (b,) and `columns`, whose
        event has a replacement."""
        if not self.events.size or not rows.size:
            return
        at = np.minimum(np.searchsorted(self.events, rows), self.events.size - 1)
        hit = self.events[at] == rows
        if hit.any():
            out[hit] = self.values[np.ix_(at[hit], columns)]


@dataclass(frozen=True)
class WindowSet:
    """One sample per prefix: its targets, and its window gathered on demand from the encoded events.

    Y (n, 2) float32 [add_cart, make_order] after the prefix; `X` (n, N, 16) float32 materialises
    every window (fine for a validation or test part of a small log); `view` and `windows(idx)`
    gather only what a batch needs.
    """

    events: EncodedEvents  # of the whole Sessions the set was built from
    window: int
    rows: np.ndarray  # (n,) event index of the prefix's newest event (int32 below 2**31 events: index_dtype)
    Y: np.ndarray
    session: np.ndarray  # (n,) ordinal into the Sessions the set was built from (index_dtype)
    position: np.ndarray  # (n,) 0-based index of the prefix's last event within its session
    # (E, CONTEXT_DIM) float32 raw context of every event of those Sessions (model/context.py); None: not computed
    context: np.ndarray | None = None
    # rows of `context` this set reads replaced (context dropout), applied by `contexts`; None: none
    context_rows: ContextRows | None = None

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @cached_property
    def X(self) -> np.ndarray:
        return self.windows(slice(None))

    @property
    def view(self) -> WindowView:
        """The windows as a lazily gathered (n, N, 16) array: `len()` and slicing."""
        return WindowView(self.events, self.rows, self.position, self.window)

    def windows(self, index: slice | np.ndarray) -> np.ndarray:
        """(b, N, 16) float32 windows of the prefixes at `index` (positions in this set)."""
        return gather_windows(self.events, self.rows[index], self.position[index], self.window)

    def contexts(self, index: slice | np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(b, k) float32 raw context `names` of the prefixes at `index`; (b, 0) for no names."""
        rows = self.rows[index]
        if not names:
            return np.zeros((len(rows), 0), dtype=np.float32)
        if self.context is None:
            raise ValueError("these windows were built without context; load them with load_dataset")
        columns = context_columns(names)
        # one (b, k) gather: rows then columns would also build a (b, CONTEXT_DIM) copy (192 MB for 3M windows)
        out = np.ascontiguousarray(self.context[np.ix_(rows, columns)], dtype=np.float32)
        if self.context_rows is not None:
            self.context_rows.patch(out, rows, columns)
        return out

    def context_view(self, names: Sequence[str]) -> ContextView:
        """The raw context `names` as a lazily gathered (n, k) array: `len()` and slicing, a batch at a time."""
        return ContextView(self, tuple(names))

    def newest(self) -> np.ndarray:
        """(n, 16) float32 the newest vector of each window (X[:, -1] without building X)."""
        return gather_windows(self.events, self.rows, self.position, 1)[:, 0]

    def take(self, mask: np.ndarray) -> WindowSet:
        """The prefixes where the (n,) bool mask (or index array) `mask` selects."""
        return WindowSet(
            self.events, self.window, self.rows[mask], self.Y[mask], self.session[mask], self.position[mask],
            self.context, self.context_rows,
        )  # fmt: skip


@dataclass(frozen=True)
class ContextView:
    """`WindowSet.contexts` gathered on slicing: `len()` and `view[a:b]` like the (n, k) array, which a pass over
    every window (validation, calibration) then never holds whole (183 MiB for 3M windows of 16 features)."""

    windows: WindowSet
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), len(self.names))

    def __getitem__(self, index: slice | np.ndarray) -> np.ndarray:
        return self.windows.contexts(index, self.names)


def read_events_csv(path: Path) -> Sessions:
    """Read the common form (CSV or Parquet); a clear BadEventFile for anything it cannot use."""
    return read_events(path)


def _curated(sessions: Sessions, min_events: int = MIN_EVENTS, max_events: int = MAX_EVENTS) -> np.ndarray:
    lengths = sessions.lengths
    return (lengths >= min_events) & (lengths <= max_events)


def curate(sessions: Sessions, min_events: int = MIN_EVENTS, max_events: int = MAX_EVENTS) -> Sessions:
    """Drop sessions with fewer than `min_events` or more than `max_events` events (docs/architecture.md §4)."""
    return sessions.select(_curated(sessions, min_events, max_events))


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


def index_dtype(n: int) -> type[np.signedinteger]:
    """The dtype of per-prefix event and session indices: int32 while they fit (half the bytes: 0.15 GiB less per
    array at 20M events), int64 beyond."""
    return np.int32 if n < 2**31 else np.int64


def prefix_targets(sessions: Sessions, session: np.ndarray | None = None) -> np.ndarray:
    """(E, 2) float32: whether an add_cart / an order follows each event later in its session.

    session: (E,) `sessions.events.session_of_event()`, when the caller has it already.
    """
    ev = sessions.events
    session_end = np.append(ev.starts[1:], len(ev)) - 1  # (S,)
    last = session_end[ev.session_of_event() if session is None else session]  # (E,)
    targets = np.empty((len(ev), 2), dtype=np.float32)
    for col, action in enumerate((ADD_CART, ORDER)):
        seen = np.cumsum(ev.actions == action)
        targets[:, col] = seen[last] > seen  # a later event of the session is one
    return targets


def cart_so_far(sessions: Sessions) -> np.ndarray:
    """(E,) bool: the cart is open after each event (`cart_has_items`; model.risk.cart_states).

    An add_cart opens the cart and an order closes it, so a buyer's prefixes after the order are false.
    """
    from model.risk import cart_open_after

    ev = sessions.events
    return cart_open_after(ev.actions, ev.starts)


def abandonment_targets(sessions: Sessions) -> np.ndarray:
    """(E,) float32: the session ends with its cart open (model.risk.cart_states), on every prefix.

    The event-level truth that `abandonment_risk` (model/risk.py) estimates. Only an order closes a
    cart, so a prefix whose session orders after its last add_cart is a 0, at the order and after it.
    """
    from model.risk import CART_OPEN, cart_states

    ev = sessions.events
    states = cart_states(ev.actions, ev.starts)
    session_end = np.append(ev.starts[1:], len(ev)) - 1  # (S,) last event of each session
    return (states[session_end[ev.session_of_event()]] == CART_OPEN).astype(np.float32)


def build_windows(
    sessions: Sessions, config: FeatureConfig, encoded: EncodedEvents | None = None, context: np.ndarray | None = None
) -> WindowSet:
    """One sample per prefix of every session: targets now, windows gathered when asked for.

    context: (E, CONTEXT_DIM) of `sessions`' events; computed here from the sessions alone when None, which
    misses the history of sessions outside `sessions` (load_dataset computes it before curation instead).
    """
    ev = sessions.events
    encoded = encoded if encoded is not None else encode_compact(ev, config)
    context = context if context is not None else compute_context(ev, sessions.context_ids)
    # (E,)-sized scratch is 0.15 GiB per int64 array at 20M events: each is built once and narrowed at once
    session = ev.session_of_event()
    targets = prefix_targets(sessions, session)
    position = np.arange(len(ev), dtype=np.int64)
    position -= ev.starts[session]
    dtype = index_dtype(len(ev))
    return WindowSet(
        events=encoded,
        window=config.window,
        rows=np.arange(len(ev), dtype=dtype),
        Y=targets,
        session=session.astype(dtype),
        position=position.astype(np.int32),
        context=context,
    )


def _hash_unit(session_ids: np.ndarray, salt: str) -> np.ndarray:
    """(S,) a deterministic uniform number in [0, 1) per session id."""
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{salt}:{sid}".encode(), digest_size=8).digest()) / 2**64
            for sid in session_ids
        ],
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


def keep_rows(array: np.ndarray, keep: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """`array[keep]` for an (E,) bool mask, compacted in place one chunk at a time: no second (E, ·) copy.

    `array` is overwritten; the result is a view of its first rows.
    """
    if keep.all():
        return array
    end = 0
    for lo in range(0, len(keep), chunk):
        rows = array[lo : lo + chunk][keep[lo : lo + chunk]]  # a copy, so overlapping the target is safe
        array[end : end + len(rows)] = rows
        end += len(rows)
    return array[:end]


def _splitter(split_mode: str) -> Callable[[Sessions], np.ndarray]:
    splitter = {"session": split_by_session, "time": split_by_time}.get(split_mode)
    if splitter is None:
        raise ValueError(f"split mode must be 'session' or 'time', got {split_mode!r}")
    return splitter


def load_dataset(
    path: Path, config: FeatureConfig, split_mode: str = "session", cache_dir: Path | None = None
) -> Dataset:
    """Read, curate, encode and split `path` (CSV or Parquet).

    With `cache_dir`, the result is cached as memory-mapped .npy files keyed by the file's sha256
    and the feature config (model/data/cache.py); a second load reads no event file.
    """
    path = Path(path)
    splitter = _splitter(split_mode)
    sha = file_sha256(path)
    key = cache_key(sha, config, split_mode, (MIN_EVENTS, MAX_EVENTS))
    folder = cache_folder(cache_dir, key) if cache_dir else None
    if folder is not None and folder.is_dir():
        return _from_cache(path, sha, folder, config)
    everything = read_events(path)
    # Before curation: a short session (< MIN_EVENTS) is still part of its shopper's history.
    context = compute_context(everything.events, everything.context_ids)
    keep = _curated(everything)
    sessions = everything.select(keep)
    if len(sessions) == 0:
        raise BadEventFile(f"{path}: no session has {MIN_EVENTS}..{MAX_EVENTS} events")
    context = keep_rows(context, np.repeat(keep, everything.lengths))
    del everything  # the uncurated arrays, before the windows' own are built
    classes, split = session_classes(sessions), splitter(sessions)
    if folder is None:
        return Dataset(path.stem, sha, sessions, build_windows(sessions, config, context=context), classes, split)
    save_cache(folder, sessions, encode_compact(sessions.events, config), context, classes, split)
    # The first run reads what a second one would: the cache, memory-mapped. Its own copies go before the windows
    # are built, and what training never reads (ids, timestamps: 0.3 GiB at 20M events) stays on disk.
    del sessions, context
    return _from_cache(path, sha, folder, config)


def _from_cache(path: Path, sha: str, folder: Path, config: FeatureConfig) -> Dataset:
    sessions, encoded, context, classes, split = load_cache(folder)
    return Dataset(path.stem, sha, sessions, build_windows(sessions, config, encoded, context), classes, split)


def slot_coverage(sessions: Sessions) -> dict[str, int]:
    """Events per action slot: which parts of the input space the data covered."""
    counts = np.bincount(sessions.events.actions.astype(np.int64), minlength=len(ACTIONS))
    return {name: int(c) for name, c in zip(ACTIONS, counts, strict=True)}
