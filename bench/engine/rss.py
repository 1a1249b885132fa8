"""Resident memory of one engine, measured in a fresh process that loads it as the service would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_RSS_PROBE = """
import json, sys
from pathlib import Path
def status_mib(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024
    return 0.0
before = status_mib('VmRSS')
if sys.argv[2] == 'torch':
    from bench.engine.torch_engine import TorchEngine
    engine = TorchEngine(Path(sys.argv[1]), device='cpu')
else:
    from service.engine.onnx_engine import load_engine
    engine = load_engine(Path(sys.argv[1]), precision=sys.argv[2], providers=['CPUExecutionProvider'])
engine.warmup((1, 8, int(sys.argv[3])))
# The child's stdout is the protocol: one JSON line for the parent.
json.dump({"rss_mib": status_mib('VmRSS'), "peak_rss_mib": status_mib('VmHWM'), "python_mib": before,
           "provider": engine.provider, "model_id": engine.model_id}, sys.stdout)
"""


def engine_rss(model_dir: Path, precision: str, max_batch: int, cwd: Path) -> dict[str, float | str]:
    """RSS of a fresh process that loads one engine (as the service would) and runs up to `max_batch`."""
    result = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(model_dir), precision, str(max_batch)],
                            capture_output=True, text=True, cwd=cwd, timeout=300, check=False)  # fmt: skip
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    parsed: dict[str, float | str] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed
