"""Where and how tensors are computed: device, threads, bf16 support, seeding.

The training and extraction code asks this module instead of deciding on its own, so the rules
live in one place:

- **Device**: CUDA when ``torch.cuda.is_available()``, otherwise the CPU (:func:`resolve_device`).
- **bf16 autocast** (:func:`resolve_bf16`): on CUDA when the card supports bf16; on the CPU only
  where it has native bf16 instructions (``avx512_bf16`` or AMX). Elsewhere bf16 is emulated and
  slower than fp32, so ``"auto"`` leaves it off. Measured on a 2-core AVX-512-BF16 machine
  (``/work/shared/PERF.md``): SS-R training 316 → 558 samples/s, loss curves track fp32,
  features differ ~2 % (relative L2).
- **Threads** (:func:`set_num_threads`): a setting, because under contention two threads can be
  slower than one. ``None`` reads ``$MTDTL_NUM_THREADS`` and otherwise keeps torch's default.
- **CPU allocator**: ``THP_MEM_ALLOC_ENABLE=1`` must be in the environment *before* torch starts
  (transparent huge pages; without it each training step page-faults 200k-340k times and runs
  ~1.5x slower). It cannot be switched on afterwards: :func:`cpu_speed_hints` reports it.
- **Freed memory stays in the process** (:func:`retain_cpu_memory`, called by training and by
  the network extractor): glibc returns every block over 32 MB to the kernel when it is freed,
  so a training step or an extraction batch maps its activations afresh each time and
  page-faults them in again (about 138k faults per SS-R batch of 256 slices without huge pages,
  tests/test_device.py).
  Keeping freed blocks in the heap removes the faults after the first step. ``$MTDTL_CPU_ALLOCATOR``
  = ``system`` leaves glibc's default.
- **mkldnn** (oneDNN) stays on: off, CPU training runs at a third of the speed.
- **Seeding** (:func:`seed_everything`): python, numpy's global RNG and torch (all devices).
"""

from __future__ import annotations

import os
import platform
import random
from functools import lru_cache

import numpy as np
import torch

from mtdtl.errors import MtdtlError
from mtdtl.log import get_logger

__all__ = [
    "resolve_device", "cpu_has_bf16", "resolve_bf16", "set_num_threads", "seed_everything",
    "cpu_speed_hints", "device_summary", "cpu_model", "usable_cores", "retain_cpu_memory",
]

log = get_logger(__name__)

#: Environment variable holding the default number of CPU threads.
THREADS_ENV = "MTDTL_NUM_THREADS"
#: Environment variable choosing the CPU allocator policy: ``retain`` (default) or ``system``.
ALLOCATOR_ENV = "MTDTL_CPU_ALLOCATOR"
ALLOCATOR_POLICIES = ("retain", "system")
_ALLOCATOR: dict[str, str | None] = {"applied": None}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask on Linux; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to compute on.

    Parameters
    ----------
    device : str, torch.device or None
        ``None`` or ``"auto"``: CUDA when available, else CPU. Anything else is passed to
        :class:`torch.device` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Returns
    -------
    torch.device
    """
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise MtdtlError(f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or None for automatic") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MtdtlError(f"device {device!r} asked for, but torch sees no CUDA GPU: use device=None or 'cpu'")
    return dev


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether the CPU has native bf16 arithmetic (x86 ``avx512_bf16`` / AMX, or Arm bf16)."""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if flags:
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    # No /proc/cpuinfo (macOS, Windows): torch's view of the CPU's vector extensions.
    cap = ""
    try:
        cap = str(torch.backends.cpu.get_cpu_capability()).upper()
    except Exception:  # pragma: no cover - old torch
        pass
    return "AMX" in cap or (platform.machine().lower() in ("arm64", "aarch64") and "SVE" in cap)


def resolve_bf16(bf16: bool | str, device: torch.device) -> bool:
    """Resolve a ``bf16`` setting (``True``, ``False`` or ``"auto"``) for ``device``.

    ``"auto"`` enables bf16 autocast where the hardware does bf16 natively (see the module
    docstring); ``True`` on hardware without it is honoured with a warning (it is slower).
    """
    if isinstance(bf16, str):
        key = bf16.strip().lower()
        if key in ("auto", ""):
            if device.type == "cuda":
                return bool(torch.cuda.is_bf16_supported())
            if device.type == "cpu":
                return cpu_has_bf16()
            return False
        if key in ("true", "1", "yes", "on"):
            bf16 = True
        elif key in ("false", "0", "no", "off"):
            bf16 = False
        else:
            raise MtdtlError(f"bf16={bf16!r}: use True, False or 'auto'")
    bf16 = bool(bf16)
    if bf16 and device.type == "cpu" and not cpu_has_bf16():
        log.warning("bf16 autocast on a CPU without native bf16 (avx512_bf16/AMX): expect it to be slower than fp32")
    return bf16


def set_num_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op CPU threads; returns the number in use.

    Parameters
    ----------
    num_threads : int or None
        ``None``: ``$MTDTL_NUM_THREADS`` when set, otherwise torch's current setting.
    """
    if num_threads is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        if env:
            try:
                num_threads = int(env)
            except ValueError:
                raise MtdtlError(f"${THREADS_ENV}={env!r} is not an integer") from None
    if num_threads is not None:
        num_threads = int(num_threads)
        if num_threads < 1:
            raise MtdtlError(f"num_threads={num_threads}: must be at least 1")
        if torch.get_num_threads() != num_threads:
            torch.set_num_threads(num_threads)
    torch.backends.mkldnn.enabled = True
    return torch.get_num_threads()


def retain_cpu_memory(policy: str | None = None) -> str:
    """Keep memory freed by this process for its next allocations (glibc on Linux).

    By default glibc serves every block over its mmap threshold (at most 32 MB) with a fresh
    ``mmap`` and unmaps it on ``free``. Training steps and extraction batches allocate and free
    the same large activations over and over, so every step maps them afresh and page-faults
    them in again: on a VM without transparent huge pages at hand, page faults made an SS-R
    extraction batch several times slower (``benchmarks/bench_train.py`` and
    ``bench_extract.py`` measure the effect as ``--allocator system`` against the default).
    ``"retain"`` sets ``M_MMAP_MAX`` to 0 (large blocks come from the heap) and a trim threshold
    of 2 GiB (the heap is not given back), so after the first step the pages are reused. The
    cost: the process keeps its peak memory until it exits.

    The setting is process-wide and sticky: once applied it stays for the process (glibc's
    dynamic thresholds cannot be restored). Without glibc (macOS, Windows, musl) it does nothing.

    Parameters
    ----------
    policy : {"retain", "system"} or None
        ``None``: ``$MTDTL_CPU_ALLOCATOR``, else ``"retain"``.

    Returns
    -------
    str
        The policy in effect: ``"retain"``, ``"system"``, or ``"unavailable"`` (not glibc).
    """
    if policy is None:
        policy = os.environ.get(ALLOCATOR_ENV, "").strip().lower() or "retain"
    if policy not in ALLOCATOR_POLICIES:
        raise MtdtlError(f"CPU allocator policy {policy!r} (${ALLOCATOR_ENV}): expected one of {ALLOCATOR_POLICIES}")
    if _ALLOCATOR["applied"] == "retain":
        return "retain"
    if policy == "system":
        return "system"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        _ALLOCATOR["applied"] = "unavailable"
        return "unavailable"
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 2**31 - 1) == 1
    except (OSError, AttributeError):
        ok = False
    _ALLOCATOR["applied"] = "retain" if ok else "unavailable"
    if ok:
        log.debug("CPU allocator: freed memory stays in the process (%s=system to turn this off)", ALLOCATOR_ENV)
    return _ALLOCATOR["applied"]


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch's RNGs (CPU and every GPU)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_speed_hints() -> list[str]:
    """Settings that would make CPU training faster, as human-readable hints (empty: all good)."""
    hints = []
    if os.environ.get("THP_MEM_ALLOC_ENABLE") != "1":
        hints.append("set THP_MEM_ALLOC_ENABLE=1 in the environment before Python starts "
                     "(transparent huge pages for torch's CPU allocator: ~1.5x faster training)")
    if not torch.backends.mkldnn.is_available():
        hints.append("this torch build has no mkldnn (oneDNN): CPU convolutions will be slow")
    return hints


def device_summary(device: torch.device, *, bf16: bool = False, channels_last: bool = False) -> dict:
    """JSON-ready description of the compute setup (for logs and metrics)."""
    out = {
        "device": str(device),
        "bf16": bool(bf16),
        "channels_last": bool(channels_last),
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    else:
        out["cpu"] = platform.processor() or platform.machine()
        out["cpu_bf16"] = cpu_has_bf16()
        out["thp_mem_alloc"] = os.environ.get("THP_MEM_ALLOC_ENABLE") == "1"
        out["cpu_allocator"] = _ALLOCATOR["applied"] or "system"
    return out
