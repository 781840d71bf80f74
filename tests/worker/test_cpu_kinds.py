"""The precision choice on each kind of CPU this project runs on, from a
`/proc/cpuinfo` of each (tests/worker/cpuinfo/: the Xeon's captured on such a
machine, the two EPYCs' written from those CPUs' flag sets as Linux reports them),
so the choice stays covered whatever machine runs the suite:

- an AMD EPYC with AVX2 only (Zen 2): no native bf16, so `auto` is fp32;
- an AMD EPYC with AVX-512 BF16 (Zen 4), no AMX: bf16;
- an Intel Xeon with AMX (Sapphire Rapids): bf16.
"""

from pathlib import Path

import pytest

from worker.precision import cpu_flags, resolve_precision
from worker.settings import Precision

CPUINFO = Path(__file__).parent / "cpuinfo"
KINDS = {"epyc-avx2.txt": "fp32", "epyc-avx512-bf16.txt": "bf16", "xeon-amx.txt": "bf16"}


@pytest.mark.parametrize("kind,expected", sorted(KINDS.items()))
def test_auto_precision_on_each_kind_of_cpu(kind, expected):
    flags = cpu_flags(CPUINFO / kind)
    assert "avx2" in flags  # the file was read, not an empty set
    assert resolve_precision(Precision.AUTO, flags) == expected


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("setting", [Precision.FP32, Precision.BF16])
def test_an_explicit_precision_is_kept_on_every_cpu(kind, setting):
    assert resolve_precision(setting, cpu_flags(CPUINFO / kind)) == setting.value


def test_the_kinds_differ_in_the_flags_that_decide():
    amd2, amd4, intel = (cpu_flags(CPUINFO / kind) for kind in sorted(KINDS))
    assert not amd2 & {"avx512f", "avx512_bf16", "amx_bf16"}
    assert "avx512_bf16" in amd4 and "amx_bf16" not in amd4
    assert {"avx512_bf16", "amx_bf16", "amx_tile"} <= intel


def test_no_flags_line_or_no_file_means_fp32(tmp_path):
    empty = tmp_path / "cpuinfo"
    empty.write_text("processor\t: 0\nmodel name\t: unknown\n")
    assert cpu_flags(empty) == frozenset()
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert resolve_precision(Precision.AUTO, cpu_flags(empty)) == "fp32"

