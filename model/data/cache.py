"""The training-data cache: one folder of .npy files per (data hash, feature config), read memory-mapped.

Keyed by the file's sha256, the FeatureConfig, the feature layout and context fingerprints, the split mode, the
curation bounds and CACHE_VERSION: change any of them and a new folder is written. The folder is
written under a temporary name and renamed, so a crash never leaves a half cache behind.

Contents (E curated events, S sessions): ids (S,) str; actions int8, ts float64, from_ad bool,
dwell float32, flags uint8 (E,); context float32 (E, CONTEXT_DIM); starts int64, classes int8,
split int8 (S,); where the log has them, items and categories int32 (E,) and users int32 (S,).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from model.context import CONTEXT_NAMES, ContextIds, context_fingerprint
from model.data.compact import EncodedEvents
from model.data.sessions import Sessions
from model.features import EventLog, FeatureConfig, layout_fingerprint

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # 3: the context matrix (model/context.py) and the ids behind it
_ARRAYS = ("actions", "ts", "from_ad", "dwell", "flags", "starts", "classes", "split", "context")
_IDS = ("items", "categories", "users")  # optional: written only where the log has them


def cache_key(sha: str, config: FeatureConfig, split_mode: str, curation: tuple[int, int]) -> str:
    context = context_fingerprint(CONTEXT_NAMES)
    bounds = f"{curation[0]}-{curation[1]}"
    key = f"{sha}:{config.to_dict()}:{layout_fingerprint()}:{context}:{split_mode}:{bounds}:v{CACHE_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def cache_folder(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"data-{key}"


def save_cache(
    folder: Path, sessions: Sessions, encoded: EncodedEvents, context: np.ndarray | None, classes: np.ndarray,
    split: np.ndarray,
) -> None:  # fmt: skip
    """Write the folder atomically (temp folder, then rename)."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    ev = sessions.events
    arrays = {
        "actions": ev.actions, "ts": ev.ts, "from_ad": ev.from_ad, "dwell": encoded.dwell, "flags": encoded.flags,
        "starts": ev.starts, "classes": classes, "split": split, "context": context,
    }  # fmt: skip
    ids = sessions.context_ids
    arrays.update({n: a for n, a in zip(_IDS, (ids.items, ids.categories, ids.users), strict=True) if a is not None})
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", np.asarray(array))
    np.save(tmp / "ids.npy", sessions.ids.astype(str))  # fixed-width unicode: no pickle in a cache
    try:
        tmp.rename(folder)
    except OSError:  # another process wrote the same key first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote the training-data cache %s", folder)


def load_cache(folder: Path) -> tuple[Sessions, EncodedEvents, np.ndarray, np.ndarray, np.ndarray]:
    """(sessions, encoded events, context, classes, split); per-event arrays memory-mapped read-only."""
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    ids = {name: np.load(folder / f"{name}.npy", mmap_mode="r") if (folder / f"{name}.npy").is_file() else None
           for name in _IDS}  # fmt: skip
    session_ids = np.load(folder / "ids.npy").astype(object)
    events = EventLog(arrays["actions"], arrays["ts"], arrays["from_ad"], np.asarray(arrays["starts"]))
    encoded = EncodedEvents(action=arrays["actions"], dwell=arrays["dwell"], flags=arrays["flags"])
    log.info("training data from the cache %s", folder)
    sessions = Sessions(session_ids, events, ContextIds(ids["items"], ids["categories"], ids["users"]))
    return sessions, encoded, arrays["context"], np.asarray(arrays["classes"]), np.asarray(arrays["split"])
