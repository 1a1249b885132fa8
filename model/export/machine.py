"""What machine a benchmark ran on: CPU model and the ISA flags that decide int8 and SIMD speed."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")


def cpu_description() -> dict[str, str]:
    """CPU model, core count and the relevant ISA flags found in /proc/cpuinfo (best effort off Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    present = [f for f in ISA_FLAGS if f in flags]
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "isa": " ".join(present) if present else "none of " + " ".join(ISA_FLAGS),
    }


def machine_line() -> str:
    d = cpu_description()
    return f"{d['cpu']}, {d['cores']} logical cores, ISA: {d['isa']}"
