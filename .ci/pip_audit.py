"""Audit the pinned dependencies (constraints.txt) with pip-audit and report every finding.

Policy (docs/reliability.md):
- a known vulnerability fails CI, unless its id is listed in .ci/pip-audit-ignore.txt with a reason
  (an advisory with no fixed release yet, or one in a path we never run); ignored findings are still printed;
- packages pip-audit could not look up (no network, a PyPI outage, a private mirror) are not a pass: they
  are counted and printed as NOT AUDITED, and CI goes on, because a network hiccup must not fail a
  build; set SI_AUDIT_REQUIRED=1 (a release pipeline) to make an incomplete audit fail instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / ".ci" / "pip-audit-ignore.txt"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def ignored_ids() -> dict[str, str]:
    """`ID  reason` per line; # comments."""
    if not IGNORE_FILE.is_file():
        return {}
    out = {}
    for line in IGNORE_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            vuln_id, _, reason = line.partition(" ")
            out[vuln_id] = reason.strip()
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "audit.json"
        done = subprocess.run(
            [sys.executable, "-m", "pip_audit", "-r", str(ROOT / "constraints.txt"), "--no-deps", "--disable-pip",
             "--format", "json", "--output", str(report_path), "--progress-spinner", "off", "--timeout", "15"],
            capture_output=True, text=True, timeout=600, check=False,
        )
        if not report_path.is_file():
            say(f"pip-audit: NOT RUN (exit {done.returncode}): {done.stderr.strip()[-1500:]}")
            return 1 if os.environ.get("SI_AUDIT_REQUIRED") == "1" else 0
        report = json.loads(report_path.read_text())
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    ignore = ignored_ids()
    failing = 0
    for dep in deps:
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            reason = next((ignore[i] for i in ids if i in ignore), None)
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed release"
            status = f"IGNORED ({reason})" if reason else "FAIL"
            failing += reason is None
            say(f"pip-audit: {status} {dep['name']} {dep['version']}: {' / '.join(ids)}; fixed in: {fixes}")
    audited = len(deps) - len(skipped)
    say(f"pip-audit: {audited} of {len(deps)} pinned packages audited, {failing} failing finding(s)")
    if skipped:
        say(f"pip-audit: NOT AUDITED ({len(skipped)}): {skipped[0]['skip_reason']} ... "
            "(no advisory service reachable?); this is not a pass")
        if os.environ.get("SI_AUDIT_REQUIRED") == "1":
            return 1
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
