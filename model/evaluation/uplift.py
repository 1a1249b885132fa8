"""The coupons' measured uplift: conversion after an alert, treat against the randomized holdout.

Input: one row per alert (service/store/alerts.py decode_outcomes: session, ts, arm, outcome, ...). An alert
is settled once its cart closed by an order (`order`) or its session expired with the cart open
(`expired`); `pending` alerts (session still live) are left out. Conversion = share of settled alerts
followed by an order. The difference treat − hold gets a percentile bootstrap CI; the number needed to treat
is 1 / difference.

The bootstrap resamples sessions, not alerts: the session is the randomization unit (its id's keyed hash
picks the arm), and one session can hold several alerts (one per open cart: cart, order, cart again), whose
outcomes are one shopper's and correlated. Each replicate draws each arm's sessions with replacement (the arms
are independent random samples) and takes its conversion as orders / alerts over the drawn sessions (a ratio
estimator, the clustered form of the share). With one alert per session this is the plain alert bootstrap.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROW_FIELDS: tuple[str, ...] = ("session", "event_index", "ts", "risk", "arm", "policy", "model", "outcome", "order_ts")
SETTLED = ("order", "expired")
CI_LEVEL = 0.95
MAX_DAY_LABELS = 12  # the plot's x axis labels at most this many days
_BLOCK_CELLS = 4_000_000  # replicates per block × sessions drawn: ~32 MB of indexes


@dataclass(frozen=True)
class ArmRate:
    n: int
    orders: int

    @property
    def rate(self) -> float | None:
        return self.orders / self.n if self.n else None


def write_rows(rows: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Alerts and outcomes to a CSV (the exported file `uplift --input` reads)."""
    count = 0
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in ROW_FIELDS})
            count += 1
    return count


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as f:
        return [{**r, "ts": float(r["ts"]), "risk": float(r["risk"])} for r in csv.DictReader(f)]


def _arm_rate(converted: np.ndarray) -> ArmRate:
    return ArmRate(n=int(converted.size), orders=int(converted.sum()))


def uplift(rows: list[dict[str, Any]], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Conversion per arm, the difference with its session bootstrap CI, the NNT, and the same per UTC day."""
    settled = [r for r in rows if r["outcome"] in SETTLED]
    arm = np.array([r["arm"] for r in settled])
    session = np.array([r["session"] for r in settled])
    converted = np.array([r["outcome"] == "order" for r in settled], dtype=bool)
    day = np.array([_day(r["ts"]) for r in settled])
    out = {"n_alerts": len(rows), "n_pending": len(rows) - len(settled),
           **_compare(arm, session, converted, n_boot, seed)}
    out["per_day"] = [{"day": d, **_compare(arm[day == d], session[day == d], converted[day == d], 0, seed)}
                      for d in sorted(set(day))]
    return out


def session_totals(session: np.ndarray, converted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S,) alerts and (S,) orders per session: the clusters the bootstrap draws."""
    _, index = np.unique(session, return_inverse=True)
    return np.bincount(index), np.bincount(index, weights=converted).astype(np.int64)


def bootstrap_rates(alerts: np.ndarray, orders: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) conversion of replicates that draw the (S,) sessions with replacement: Σ orders / Σ alerts."""
    n = alerts.size
    block = max(1, _BLOCK_CELLS // max(n, 1))
    rates = np.empty(n_boot)
    for lo in range(0, n_boot, block):
        drawn = rng.integers(0, n, size=(min(block, n_boot - lo), n))  # (b, S) session indexes
        rates[lo:lo + len(drawn)] = orders[drawn].sum(axis=1) / alerts[drawn].sum(axis=1)
    return rates


def _compare(arm: np.ndarray, session: np.ndarray, converted: np.ndarray, n_boot: int,
             seed: int) -> dict[str, Any]:
    treat, hold = arm == "treat", arm == "hold"
    rt, rh = _arm_rate(converted[treat]), _arm_rate(converted[hold])
    diff = None if rt.rate is None or rh.rate is None else rt.rate - rh.rate
    low = high = None
    if diff is not None and n_boot > 0:
        rng = np.random.default_rng(seed)
        boot_t = bootstrap_rates(*session_totals(session[treat], converted[treat]), n_boot, rng)
        boot_h = bootstrap_rates(*session_totals(session[hold], converted[hold]), n_boot, rng)
        alpha = (1 - CI_LEVEL) / 2
        low, high = (float(x) for x in np.quantile(boot_t - boot_h, [alpha, 1 - alpha]))
    sessions_t, sessions_h = (int(np.unique(session[in_arm]).size) for in_arm in (treat, hold))
    return {
        "treat": {"n": rt.n, "orders": rt.orders, "conversion": rt.rate, "sessions": sessions_t},
        "hold": {"n": rh.n, "orders": rh.orders, "conversion": rh.rate, "sessions": sessions_h},
        "difference": diff, "ci_low": low, "ci_high": high,
        "nnt": _nnt(diff), "nnt_range": _nnt_range(low, high),
    }


def _nnt(diff: float | None) -> float | None:
    return None if diff is None or diff <= 0 else 1 / diff


def _nnt_range(low: float | None, high: float | None) -> list[float] | None:
    """The NNT's CI when the difference's CI lies above 0; None when it covers 0 (the NNT is unbounded)."""
    if low is None or high is None or low <= 0:
        return None
    return [1 / high, 1 / low]


def _day(ts: float) -> str:
    return str(np.datetime64(math.floor(ts), "s").astype("datetime64[D]"))


def write_report(result: dict[str, Any], out_dir: Path, command: str) -> list[Path]:
    """uplift.md, uplift.csv (per day and overall) and uplift.png (conversion per arm per day)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path, md_path = out_dir / "uplift.csv", out_dir / "uplift.png", out_dir / "uplift.md"
    periods = [("all", result), *((d["day"], d) for d in result["per_day"])]
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["period", "treat_n", "treat_orders", "treat_conversion", "hold_n", "hold_orders",
                         "hold_conversion", "difference", "ci_low", "ci_high", "nnt"])
        for name, r in periods:
            writer.writerow([name, r["treat"]["n"], r["treat"]["orders"], r["treat"]["conversion"], r["hold"]["n"],
                             r["hold"]["orders"], r["hold"]["conversion"], r["difference"], r["ci_low"],
                             r["ci_high"], r["nnt"]])
    _plot(result, png_path)
    md_path.write_text(_markdown(result, command))
    return [md_path, csv_path, png_path]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _pp(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} pp"


def _markdown(r: dict[str, Any], command: str) -> str:
    nnt = "–" if r["nnt"] is None else f"{r['nnt']:.1f}"
    nnt_range = "unbounded (the CI covers 0)" if r["nnt_range"] is None else "{:.1f} to {:.1f}".format(*r["nnt_range"])
    lines = [
        "# Coupon uplift: treat against hold\n",
        f"Command: `{command}`\n",
        f"{r['n_alerts']:,} alerts, {r['n_pending']:,} still pending (session live) and left out. Conversion = share "
        "of settled alerts whose cart an order closed after the alert.\n",
        "| arm | sessions | settled alerts | orders | conversion |",
        "|---|---|---|---|---|",
        *(f"| {arm} | {r[arm]['sessions']:,} | {r[arm]['n']:,} | {r[arm]['orders']:,} | {_pct(r[arm]['conversion'])} |"
          for arm in ("treat", "hold")),
        "",
        f"- Difference (treat − hold): **{_pp(r['difference'])}**, {CI_LEVEL:.0%} bootstrap CI "
        f"[{_pp(r['ci_low'])}, {_pp(r['ci_high'])}] (resampling sessions, the randomization unit).",
        f"- Number needed to treat: {nnt} (CI {nnt_range}).",
        "",
        "![conversion per day](uplift.png)\n",
    ]
    return "\n".join(lines)


def _plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d["day"] for d in r["per_day"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for arm in ("treat", "hold"):
        # A day without a settled alert in an arm has no conversion: a gap in its line, not a 0.
        conversion = [math.nan if d[arm]["conversion"] is None else 100 * d[arm]["conversion"] for d in r["per_day"]]
        ax.plot(range(len(days)), conversion, marker="o", markersize=3, label=arm)
    step = max(1, math.ceil(len(days) / MAX_DAY_LABELS))
    ax.set_xticks(range(0, len(days), step), days[::step])
    ax.set_ylabel("conversion after alert (%)")
    ax.set_title("Conversion after a coupon alert, per day (UTC)")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
