"""Which precision `MODEL_PRECISION` means on this CPU."""

from __future__ import annotations

from pathlib import Path

from worker.settings import Precision

# CPU flags that give native bf16 matrix work (AMX tiles or AVX-512 BF16).
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def resolve_precision(setting: Precision, flags: frozenset[str] | None = None) -> str:
    """`fp32` or `bf16`: `auto` picks bf16 only where the CPU has it natively."""
    if setting is not Precision.AUTO:
        return setting.value
    flags = cpu_flags() if flags is None else flags
    return "bf16" if flags & BF16_FLAGS else "fp32"
