"""How to read one raw clickstream export: the `SourceSpec`, the built-in named sources, and the
parsers of raw field values (timestamps, from_ad flags).

A new shop is a new `SourceSpec` (from CLI flags via `build_spec`), never a code change in
`model/data/prepare.py`. Column references are either a header name or a 0-based position.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from model.features import action_index

logger = logging.getLogger(__name__)

Column = str | int
TsUnit = Literal["s", "ms", "iso"]
TS_UNITS: tuple[str, ...] = ("s", "ms", "iso")
DEFAULT_GAP_MINUTES = 30.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE = frozenset({"1", "true", "t", "yes", "y"})  # from_ad texts, stripped and lower-cased
_FALSE = frozenset({"0", "false", "f", "no", "n"})


@dataclass(frozen=True)
class SourceSpec:
    """Layout and meaning of one raw export; everything `prepare` needs to know about a shop.

    ts_range: half-open [lo, hi) in epoch seconds; events outside it are dropped and counted.
    gap_minutes: a user's next event more than this after the previous one opens a new session;
        ignored when `session_col` is set (the source's own sessions are used as they are).
    timezone: the shop's time zone, reported with the stats for the calendar flags of
        model/features.py; also the zone of ISO timestamps that carry no offset.
    columns: names of the columns of a headerless file, so that `*_col` may still be names.
    item_col, category_col: optional item and category ids, kept in the common CSV for the context
        features (model/context.py); with a session column, `user_col` is kept as the user id too.
    """

    name: str
    user_col: Column | None
    ts_col: Column
    event_col: Column
    action_map: Mapping[str, str]
    session_col: Column | None = None
    from_ad_col: Column | None = None
    has_header: bool = True
    delimiter: str = ","
    ts_unit: TsUnit = "s"
    ts_range: tuple[int, int] | None = None
    gap_minutes: float = DEFAULT_GAP_MINUTES
    timezone: str = "UTC"
    columns: tuple[str, ...] | None = None
    item_col: Column | None = None
    category_col: Column | None = None

    def __post_init__(self) -> None:
        if self.user_col is None and self.session_col is None:
            raise ValueError(f"source {self.name!r}: needs a user column or a session column")
        if not self.action_map:
            raise ValueError(f"source {self.name!r}: the event-type → action mapping is empty")
        for action in self.action_map.values():
            action_index(action)  # ValueError that lists the 12 valid names
        if self.ts_unit not in TS_UNITS:
            raise ValueError(f"ts_unit {self.ts_unit!r}: expected one of {', '.join(TS_UNITS)}")
        if self.gap_minutes <= 0:
            raise ValueError(f"gap_minutes must be > 0, got {self.gap_minutes}")
        if self.ts_range is not None and self.ts_range[0] >= self.ts_range[1]:
            raise ValueError(f"ts_range {self.ts_range}: the start must be before the end")
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        try:  # fail now on a misspelt zone, not after reading 100M rows
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {self.timezone!r}; expected an IANA name") from err

    @property
    def session_mode(self) -> str:
        return "column" if self.session_col is not None else "gap"


TAOBAO = SourceSpec(
    name="taobao",
    user_col="user_id",
    ts_col="timestamp",
    event_col="behavior_type",
    action_map={"pv": "view_product", "cart": "add_cart", "fav": "concerned", "buy": "order"},
    has_header=False,
    columns=("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
    item_col="item_id",
    category_col="category_id",
    ts_unit="s",
    # 2017-11-25 00:00 to 2017-12-04 00:00 Asia/Shanghai: the dataset's official window.
    ts_range=(1511539200, 1512316800),
    timezone="Asia/Shanghai",
)

BUILTIN_SOURCES: dict[str, SourceSpec | None] = {"taobao": TAOBAO, "generic": None}


def parse_column(value: str) -> Column:
    """A CLI column reference: digits are a 0-based position, anything else a header name."""
    text = value.strip()
    return int(text) if text.isdigit() else text


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """`["view=view_product", ...]` → `{"view": "view_product"}`; checks the action names."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        raw, sep, action = pair.rpartition("=")
        if not sep or not raw:
            raise ValueError(f"--map {pair!r}: expected RAW_TYPE=ACTION")
        action_index(action.strip())
        mapping[raw] = action.strip()
    return mapping


def parse_epoch_seconds(value: str) -> int:
    """A ts-range bound: epoch seconds, or ISO 8601 (UTC when it has no offset)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


_GENERIC_REQUIRED = {
    "--user-col": "user_col",
    "--ts-col": "ts_col",
    "--event-col": "event_col",
    "--map": "action_map",
}


def build_spec(source: str, **overrides: Any) -> SourceSpec:
    """The named source with every non-None override applied; `generic` must name its columns.

    overrides: any `SourceSpec` field. Raises ValueError with a message fit for a CLI user.
    """
    if source not in BUILTIN_SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of: {', '.join(BUILTIN_SOURCES)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    base = BUILTIN_SOURCES[source]
    if base is not None:
        return replace(base, **given)
    missing = [flag for flag, key in _GENERIC_REQUIRED.items() if key not in given]
    if "user_col" not in given and "session_col" in given:
        missing = [flag for flag in missing if flag != "--user-col"]
    if missing:
        raise ValueError(f"source 'generic' needs {', '.join(missing)}")
    return SourceSpec(name=source, **given)


def iso_micros_lookup(texts: list[str], tz_name: str = "UTC") -> dict[str, int | None]:
    """Epoch microseconds of each distinct ISO 8601 text (None where unparsable); no offset: `tz_name`."""
    zone = ZoneInfo(tz_name)
    return {text: _iso_micros(text, zone) for text in texts}


def _iso_micros(text: str, zone: ZoneInfo) -> int | None:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def flag_codes(texts: list[str]) -> dict[str, int]:
    """from_ad of each distinct raw text: 1 for 1/true/yes, 0 for 0/false/no, -1 for empty or unrecognised."""
    lookup: dict[str, int] = {}
    for text in texts:
        norm = text.strip().lower()
        lookup[text] = 1 if norm in _TRUE else 0 if norm in _FALSE else -1
    return lookup
