"""The engine's choice of configuration (``engine/config.py``), CPU flag parsing and the
simulated fault's trigger: pure functions, no model."""

from __future__ import annotations

import pytest

from entropic_local.engine.config import (
    ALL_GPU_LAYERS, FLASH_ATTN_DEFAULT, Verdict, decide, flash_attn_value, gpu_layers_value,
)
from entropic_local.engine.hardware import cpu_flags, cpu_model
from entropic_local.engine.probe import fault_hits
from entropic_local.errors import UsageError

SAFE = Verdict(source="test")
ONE_ROW = Verdict(multirow=False, onerow=True, source="test")
BROKEN = Verdict(multirow=False, onerow=False, source="test")
AMX = ("AMX",)

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8
"""


def test_cpu_flags_and_model_from_cpuinfo():
    assert {"amx_tile", "amx_int8", "avx512f"} <= cpu_flags(XEON)
    assert "amx_tile" not in cpu_flags("flags\t: fpu avx2\n")
    assert cpu_model(XEON) == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_flags("") == frozenset()


@pytest.mark.parametrize("workload, verdict, repack, ubatch", [
    ("single", SAFE, True, 512),
    ("batch", SAFE, True, 512),
    ("single", ONE_ROW, True, 1),       # the fast one-row path kept for one sequence
    ("batch", ONE_ROW, False, 512),     # a batch keeps its multi-row products instead
    ("single", BROKEN, False, 512),
    ("batch", BROKEN, False, 512),
])
def test_the_rule(workload, verdict, repack, ubatch):
    c = decide(workload, AMX, verdict)
    assert (c.use_extra_bufts, c.n_ubatch) == (repack, ubatch)
    assert c.one_row_only == (repack and not verdict.multirow)
    assert c.reason and c.flash_attn == FLASH_ATTN_DEFAULT == "off"


def test_no_extra_buffer_types_means_defaults():
    c = decide("single", (), BROKEN)
    assert c.n_ubatch == 512 and "no extra buffer types" in c.reason


def test_given_settings_win():
    assert decide("single", AMX, SAFE, repack=False).use_extra_bufts is False
    c = decide("single", AMX, ONE_ROW, repack=True)  # forced on: still one row, since unsafe
    assert c.use_extra_bufts and c.n_ubatch == 1
    c = decide("single", AMX, ONE_ROW, repack=True, n_ubatch=64)  # both forced: as given
    assert c.use_extra_bufts and c.n_ubatch == 64 and "unsafe" in c.reason
    c = decide("single", AMX, ONE_ROW, n_ubatch=64)  # several rows asked: the fast path goes
    assert not c.use_extra_bufts and c.n_ubatch == 64
    assert decide("single", AMX, SAFE, n_batch=32, n_ubatch=100).n_ubatch == 32  # ubatch <= batch
    assert decide("batch", AMX, SAFE, flash_attn=True).flash_attn == "on"


@pytest.mark.parametrize("bad", [dict(n_batch=0), dict(n_ubatch=0), dict(flash_attn="maybe")])
def test_bad_settings_are_usage_errors(bad):
    with pytest.raises(UsageError):
        decide("single", AMX, SAFE, **bad)
    with pytest.raises(UsageError):
        decide("many", AMX, SAFE)


def test_flash_attn_and_gpu_layer_values():
    assert [flash_attn_value(v) for v in (None, True, False, "ON", "auto")] == [None, "on", "off", "on", "auto"]
    assert [gpu_layers_value(v) for v in (None, 0, 12, -1, "all", "7")] == [0, 0, 12, ALL_GPU_LAYERS,
                                                                           ALL_GPU_LAYERS, 7]
    with pytest.raises(UsageError):
        gpu_layers_value("some")


def test_fault_trigger():
    assert not fault_hits(None, True, 512)
    assert not fault_hits("multirow", False, 512)  # off the fast path: safe
    assert not fault_hits("multirow", True, 1) and fault_hits("multirow", True, 2)
    assert fault_hits("segv", True, 1)
