"""docs/benchmarks/fuzz.{md,csv} from `session-intent bench fuzz`; never edited by hand."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.reliability.fuzz import CHECKS, FuzzResult
from bench.report.files import provenance_lines, write_rows_csv

SERVER_ERROR_CODES = ("ST101", "ST102")  # a 5xx, for any request or for an undeclared Content-Type


def write_fuzz_report(results: Sequence[FuzzResult], out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [{
        "mode": r.mode, "operations": r.operations, "generated_cases": r.generated,
        "server_error_failures": sum(r.failing_cases(code) for code in SERVER_ERROR_CODES),
        "schema_mismatch_failures": r.failing_cases() - sum(r.failing_cases(c) for c in SERVER_ERROR_CODES),
        "running_time_s": round(r.running_time_s, 1), "stop_reason": r.stop_reason,
    } for r in results]
    csv_path = write_rows_csv(out_dir / "fuzz.csv", rows)
    lines = [
        "# Schema fuzzing: Schemathesis against the real service, auth off and auth on", "",
        *provenance_lines(command),
        "Each mode: `session-intent serve` on a real redis-server; the Schemathesis CLI on its /openapi.json, every "
        "operation, every phase (examples, coverage, fuzzing), checks: " + ", ".join(f"`{c}`" for c in CHECKS)
        + ". Auth on: the service holds the sha256 digest of a freshly drawn admin key, sent with every request. "
        "A run stops at `-n` examples per operation and phase or at its time budget (stop_reason). Failures are "
        "Schemathesis' unique failures: it groups the cases that fail one check the same way into one.", "",
        "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows), "",
        "## Failures, as Schemathesis groups them", "",
    ]
    for r in results:
        if not r.failures:
            lines.append(f"- {r.mode}: none")
        for f in r.failures:
            lines.append(f"- {r.mode}: {f.get('code')} {f.get('title')}: {f.get('count')} unique failure(s) on "
                         f"{', '.join(map(str, f.get('operations', []) or []))}")  # type: ignore[call-overload]
    md_path = out_dir / "fuzz.md"
    md_path.write_text("\n".join(lines) + "\n")
    return [md_path, csv_path]
