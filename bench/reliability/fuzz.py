"""Schema fuzzing (docs/reliability.md): Schemathesis against the real service, auth off and auth on.

Each mode starts its own `session-intent serve` on a real redis-server and runs the Schemathesis CLI on
its /openapi.json (every route, every phase). With auth on, the service holds the sha256 digest of a
freshly drawn admin key and Schemathesis sends that key on every request. The checks are the ones that
say "no server error, and every answer matches the schema"; figures come from Schemathesis' JSON report.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs.redis_server import RedisServer, free_port
from bench.procs.servers import ServerSpec, running_server, server_spec
from model.artifacts import DEFAULT_MODEL_DIR

log = logging.getLogger(__name__)

# ignored_auth and missing_required_header matter with auth on: the OpenAPI then declares the key
# (service/openapi.py follows the auth mode), so a route that answers without it fails.
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "ignored_auth", "missing_required_header")
MODES = ("auth-off", "auth-on")


@dataclass(frozen=True)
class FuzzPlan:
    max_examples: int = 1500  # per operation and phase, Schemathesis' -n
    max_time_s: float = 900.0
    seed: int = 0
    model_dir: Path = DEFAULT_MODEL_DIR


@dataclass
class FuzzResult:
    mode: str
    generated: int
    operations: int
    failures: list[dict[str, object]] = field(default_factory=list)  # Schemathesis' failure groups
    stop_reason: str = ""
    running_time_s: float = 0.0
    exit_code: int = 0
    cli_tail: str = ""

    def failing_cases(self, code: str | None = None) -> int:
        return sum(int(str(f.get("count", 0))) for f in self.failures if code is None or f.get("code") == code)


def _spec(mode: str, redis_url: str, model_dir: Path, key: str) -> ServerSpec:
    base = server_spec("service", redis_url, model_dir)
    if mode == "auth-off":
        return base
    digest = hashlib.sha256(key.encode()).hexdigest()
    return ServerSpec(base.name, base.argv, {**base.env, "SI_AUTH_ENABLED": "true",
                                             "SI_API_KEYS": json.dumps({digest: ["admin"]})})


def run_fuzz(plan: FuzzPlan, modes: tuple[str, ...] = MODES) -> list[FuzzResult]:
    results = []
    for mode in modes:
        key = secrets.token_urlsafe(24)
        with tempfile.TemporaryDirectory(prefix="si-fuzz-") as tmp, ExitStack() as stack:
            work = Path(tmp)
            server = RedisServer(work / "redis").start()
            stack.callback(server.stop)
            service = stack.enter_context(running_server(_spec(mode, server.url, plan.model_dir, key),
                                                         free_port(), work))
            report = work / "report.json"
            argv = [sys.executable, "-m", "schemathesis.cli", "run", f"{service.url}/openapi.json",
                    "--checks", ",".join(CHECKS), "-n", str(plan.max_examples), "--seed", str(plan.seed),
                    "--max-time", f"{plan.max_time_s:g}", "--no-color", "--report", "json",
                    "--report-json-path", str(report), "--continue-on-failure", "--generation-database", "none"]
            if mode == "auth-on":
                argv += ["-H", f"X-API-Key: {key}"]
            log.info("schemathesis, %s, -n %d", mode, plan.max_examples)
            # cwd: the CLI keeps a crash cache in ./.schemathesis, which belongs in the temp dir, not the checkout.
            done = subprocess.run(argv, capture_output=True, text=True, timeout=plan.max_time_s + 120, check=False,
                                  cwd=work)
            if not report.is_file():
                raise RuntimeError(f"schemathesis wrote no report ({done.returncode}):\n{done.stdout[-3000:]}"
                                   f"{done.stderr[-2000:]}")
            data = json.loads(report.read_text())
        results.append(FuzzResult(
            mode=mode, generated=int(data["test_cases"]["generated"]), operations=int(data["operations"]["tested"]),
            failures=list(data.get("failures", [])), stop_reason=str(data.get("stop_reason", "")),
            running_time_s=float(data.get("running_time", 0.0)), exit_code=done.returncode,
            cli_tail=done.stdout[-4000:].replace(key, "[key]"),
        ))
        log.info("%s: %d cases, %d failing", mode, results[-1].generated, results[-1].failing_cases())
    return results
