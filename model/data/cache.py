"""The training-data cache: one folder of .npy files per (data hash, feature config), read memory-mapped.

Keyed by the file's sha256, the FeatureConfig, the feature layout fingerprint, the split mode, the
curation bounds and CACHE_VERSION: change any of them and a new folder is written. The folder is
written under a temporary name and renamed, so a crash never leaves a half cache behind.

Contents (E curated events, S sessions): ids (S,) str; actions int8, ts float64, from_ad bool,
dwell float32, flags uint8 (E,); starts int64, classes int8, split int8 (S,).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from model.data.compact import EncodedEvents
from model.data.sessions import Sessions
from model.features import EventLog, FeatureConfig, layout_fingerprint

log = logging.getLogger(__name__)

CACHE_VERSION = 2
_ARRAYS = ("actions", "ts", "from_ad", "dwell", "flags", "starts", "classes", "split")


def cache_key(sha: str, config: FeatureConfig, split_mode: str, curation: tuple[int, int]) -> str:
    key = f"{sha}:{config.to_dict()}:{layout_fingerprint()}:{split_mode}:{curation[0]}-{curation[1]}:v{CACHE_VERSION}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def cache_folder(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"data-{key}"


def save_cache(
    folder: Path, sessions: Sessions, encoded: EncodedEvents, classes: np.ndarray, split: np.ndarray
) -> None:
    """Write the folder atomically (temp folder, then rename)."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    ev = sessions.events
    arrays = {
        "actions": ev.actions, "ts": ev.ts, "from_ad": ev.from_ad, "dwell": encoded.dwell, "flags": encoded.flags,
        "starts": ev.starts, "classes": classes, "split": split,
    }  # fmt: skip
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", np.asarray(array))
    np.save(tmp / "ids.npy", sessions.ids.astype(str))  # fixed-width unicode: no pickle in a cache
    try:
        tmp.rename(folder)
    except OSError:  # another process wrote the same key first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote the training-data cache %s", folder)


def load_cache(folder: Path) -> tuple[Sessions, EncodedEvents, np.ndarray, np.ndarray]:
    """(sessions, encoded events, classes, split); per-event arrays memory-mapped read-only."""
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
    ids = np.load(folder / "ids.npy").astype(object)
    events = EventLog(arrays["actions"], arrays["ts"], arrays["from_ad"], np.asarray(arrays["starts"]))
    encoded = EncodedEvents(action=arrays["actions"], dwell=arrays["dwell"], flags=arrays["flags"])
    log.info("training data from the cache %s", folder)
    return Sessions(ids=ids, events=events), encoded, np.asarray(arrays["classes"]), np.asarray(arrays["split"])
