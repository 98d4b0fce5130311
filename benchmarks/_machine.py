"""What machine a benchmark ran on, measured in the same run: shared by every ``bench_*.py``.

Absolute speeds differ between machines that look alike (``/work/shared/PERF.md``: two 2-core
machines with matmul peaks within 10 % ran the same extraction at 2,178 and 1,092 slices/s), and
a shared machine's load changes them from minute to minute. Every benchmark therefore prints
this header (CPU model, cores, load average, fp32 and bf16 matrix-multiply rates measured now)
and states its results first as ratios measured in the same run, then in absolute units.

Usage (from a script in ``benchmarks/``)::

    from _machine import machine, print_machine
    info = machine()            # measures the matmul rates (about a second)
    print_machine(info)
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from mtdtl.device import cpu_model, usable_cores

__all__ = ["cpu_model", "load_average", "machine", "machine_line", "matmul_gflops", "print_machine"]


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages (NaN where the OS has none)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return (float("nan"),) * 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype: torch.dtype = torch.float32, *, device: Any = "cpu", n: int | None = None,
                  repeats: int = 5) -> float:
    """Best GFLOP/s of an ``n x n @ n x n`` matmul on ``device`` with torch's current threads."""
    device = torch.device(device)
    n = n or (1024 if device.type == "cpu" else 8192)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def machine(device: Any = None, *, repeats: int = 5) -> dict:
    """CPU model, cores, torch threads, load, fp32 and bf16 matmul GFLOP/s (measured now), GPU."""
    from mtdtl.device import cpu_has_bf16, resolve_device

    device = resolve_device(device)
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable_cores(), "threads": torch.get_num_threads(),
            "load": load_average(), "device": str(device), "cpu_bf16_native": cpu_has_bf16(),
            "torch": torch.__version__, "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}
    info["fp32_gflops"] = matmul_gflops(torch.float32, device=device, repeats=repeats)
    info["bf16_gflops"] = matmul_gflops(torch.bfloat16, device=device, repeats=max(2, repeats // 2))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_bf16_native"] = bool(torch.cuda.is_bf16_supported())
    return info


def _g(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2f}"


def machine_line(info: dict) -> str:
    """One line: CPU, cores, load, matmul rates."""
    l1, l5, l15 = info["load"]
    where = info.get("gpu", info["cpu"])
    native = info.get("gpu_bf16_native", info["cpu_bf16_native"])
    return (f"{where}; {info['cores']} cores ({info['usable_cores']} usable), torch threads {info['threads']}; "
            f"load average {l1:.2f} {l5:.2f} {l15:.2f}; matmul fp32 {_g(info['fp32_gflops'])} GFLOP/s, "
            f"bf16 {_g(info['bf16_gflops'])} GFLOP/s ({'native' if native else 'emulated: no native bf16'})")


def print_machine(info: dict) -> None:
    """The header every benchmark prints first."""
    print(f"# machine: {machine_line(info)}")
    print(f"# torch {info['torch']} ({info['cpu_capability']}), device {info['device']}; ratios below are measured "
          "in this run; absolute figures depend on the machine and its load")


def load_now() -> str:
    """The current 1-minute load average, for lines printed later in a run."""
    return f"{load_average()[0]:.2f}"


def add_allocator_option(parser: Any, what: str) -> None:
    """``--allocator retain|system``: the CPU allocator policy ``what`` applies (mtdtl.device)."""
    from mtdtl.device import ALLOCATOR_POLICIES

    parser.add_argument("--allocator", choices=ALLOCATOR_POLICIES, default=None,
                        help=f"CPU allocator policy, as {what} applies it (mtdtl.device.retain_cpu_memory; default: "
                             "$MTDTL_CPU_ALLOCATOR, else retain); 'system' measures glibc's default")


def apply_allocator(choice: str | None) -> str:
    """Set the policy chosen on the command line (for this process and every extractor it builds),
    apply it as training and extraction do, and return the policy in effect."""
    from mtdtl.device import ALLOCATOR_ENV, retain_cpu_memory

    if choice:
        os.environ[ALLOCATOR_ENV] = choice
    return retain_cpu_memory()
