"""Numeric precision of inference and training: ``fp32``, ``bf16`` (autocast), or ``auto`` (chosen by measurement).

bf16 halves the bytes a matrix product moves and, on CPUs with bf16 instructions (AVX512-BF16,
AMX) or on a GPU, runs it faster. It also rounds every product to 8 bits of mantissa, so it may
change answers. ``auto`` therefore takes bf16 only when both hold:

1. **the hardware is fast at it**, measured here, not assumed from a flag: a bf16 GEMM must run at
   least ``FAST_BF16_RATIO`` times the fp32 GEMM of the same shape on this device
   (``measure_gemm_speed``; a CPU with only AVX2 emulates bf16 and runs it ~70× slower);
2. **the package keeps its answers in bf16**: its manifest's ``evaluation.precision.bf16`` (written
   by ``compare_precisions`` over its held-out and outside-generator puzzles) says ``no_loss``:
   neither the first answer nor the default answer (with test-time views) is right less often.

Everything else resolves to fp32, with the reason (``ResolvedPrecision.reason``), which
``trm solve`` and ``trm serve`` print. bf16 runs as ``torch.autocast``: weights stay fp32 (the
shipped ones, unrounded), matrix products run in bf16, norms and the halting head in fp32.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass
from typing import Any, ContextManager, Literal, Mapping

import torch

from ..errors import ConfigError

Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "auto")
#: bf16 GEMM throughput over fp32 (same shape, same threads) above which the device counts as fast at bf16.
FAST_BF16_RATIO = 1.2


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else ``ConfigError`` naming them."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision


@dataclass(frozen=True)
class GemmSpeed:
    """Measured GEMM throughput of one device in fp32 and bf16 (GFLOP/s), same shape and threads."""

    device: str
    size: int
    threads: int
    fp32_gflops: float
    bf16_gflops: float

    @property
    def bf16_ratio(self) -> float:
        """bf16 throughput over fp32."""
        return self.bf16_gflops / self.fp32_gflops if self.fp32_gflops > 0 else 0.0

    @property
    def fast_bf16(self) -> bool:
        """Is bf16 at least ``FAST_BF16_RATIO`` × fp32 here?"""
        return self.bf16_ratio >= FAST_BF16_RATIO

    def describe(self) -> str:
        return (
            f"bf16 GEMM {self.bf16_gflops:.1f} GFLOP/s vs fp32 {self.fp32_gflops:.1f} "
            f"({self.bf16_ratio:.2f}x; {self.size}^3, {self.threads} thread{'s' if self.threads != 1 else ''}, "
            f"{self.device})"
        )


def gemm_gflops(
    size: int, dtype: torch.dtype, device: str = "cpu", *, min_seconds: float = 0.05, repeats: int = 3
) -> float:
    """Best-of-``repeats`` GFLOP/s of a ``size``³ matrix product in ``dtype`` on ``device``; each repeat runs
    the product until ``min_seconds`` passed (at least once)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    flop = 2.0 * size**3
    with torch.inference_mode():
        torch.mm(a, b)  # warm-up: packing, kernel selection
        best = 0.0
        for _ in range(repeats):
            count, start = 0, time.perf_counter()
            while True:
                torch.mm(a, b)
                count += 1
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
            best = max(best, flop * count / elapsed / 1e9)
    return best


@functools.lru_cache(maxsize=8)
def measure_gemm_speed(device: str = "cpu", size: int = 256, threads: int | None = None) -> GemmSpeed:
    """fp32 and bf16 GEMM throughput on ``device`` (measured once per process and arguments; ~0.1–0.5 s)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        fp32 = gemm_gflops(size, torch.float32, device)
        # A slow bf16 path (emulated) is measured once: its verdict is clear and its repeats cost seconds.
        bf16 = gemm_gflops(size, torch.bfloat16, device, min_seconds=0.0, repeats=1)
        if bf16 >= fp32 / FAST_BF16_RATIO:
            bf16 = gemm_gflops(size, torch.bfloat16, device)
        return GemmSpeed(device, size, torch.get_num_threads(), fp32, bf16)
    finally:
        torch.set_num_threads(previous)


def package_bf16_verdict(evaluation: Mapping[str, Any] | None) -> tuple[bool, str]:
    """(keeps answers?, why) from a package's ``evaluation`` section (its ``precision.bf16`` entry)."""
    section = (evaluation or {}).get("precision") if isinstance(evaluation, Mapping) else None
    bf16 = section.get("bf16") if isinstance(section, Mapping) else None
    if not isinstance(bf16, Mapping):
        return False, "the package carries no bf16 evaluation (evaluation.precision.bf16)"
    if bf16.get("no_loss") is True:
        return True, f"the package's bf16 evaluation shows no loss ({bf16.get('summary', 'first answer and default')})"
    return False, f"the package's bf16 evaluation shows a loss ({bf16.get('summary', 'see evaluation.precision')})"


@dataclass(frozen=True)
class ResolvedPrecision:
    """The precision a model runs in, and why."""

    precision: Literal["fp32", "bf16"]
    requested: str
    reason: str

    def describe(self) -> str:
        return f"{self.precision} ({self.reason})" if self.requested == "auto" else self.precision


def resolve_precision(
    requested: str,
    device: str | torch.device = "cpu",
    evaluation: Mapping[str, Any] | None = None,
    *,
    speed: GemmSpeed | None = None,
) -> ResolvedPrecision:
    """What ``requested`` (``fp32`` | ``bf16`` | ``auto``) means for a package with ``evaluation`` on ``device``.

    ``auto``: bf16 only when the device measures fast at bf16 (``speed``, default ``measure_gemm_speed``) and
    the package's evaluation shows no loss in bf16; else fp32, with the reason.
    """
    check_precision(requested)
    if requested != "auto":
        return ResolvedPrecision(requested, requested, "asked for")  # type: ignore[arg-type]
    keeps, why = package_bf16_verdict(evaluation)
    if not keeps:
        return ResolvedPrecision("fp32", requested, f"bf16 refused: {why}")
    device_type = torch.device(device).type
    if speed is None:
        if device_type == "cuda" and not torch.cuda.is_bf16_supported():
            return ResolvedPrecision("fp32", requested, "bf16 refused: this GPU has no bf16")
        speed = measure_gemm_speed(str(device) if device_type == "cuda" else "cpu")
    if not speed.fast_bf16:
        return ResolvedPrecision("fp32", requested, f"bf16 refused: {speed.describe()}")
    return ResolvedPrecision("bf16", requested, f"{speed.describe()}; {why}")


def autocast_for(precision: str, device: str | torch.device = "cpu") -> ContextManager[Any]:
    """The autocast context of ``precision`` on ``device`` (bf16), or a no-op (fp32)."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def all_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
