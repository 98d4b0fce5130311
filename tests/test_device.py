"""mtdtl.device: the CPU allocator policy (freed memory kept for the next allocations)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from mtdtl.device import ALLOCATOR_ENV, retain_cpu_memory
from mtdtl.errors import MtdtlError

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the allocator policy acts on glibc only")

# In a fresh process: the untrained SS-R network on a batch of 256 slices, three times; the page
# faults of the third call count. glibc unmaps the large activations on free, so by default each
# call faults their pages in again; with freed memory retained they are reused.
CHILD = r"""
import json, resource, sys
import numpy as np, torch
from mtdtl.device import retain_cpu_memory
policy = retain_cpu_memory()  # $MTDTL_CPU_ALLOCATOR, as the extractor reads it
from mtdtl.features import get_extractor
ex = get_extractor("rand:ss_r:self", scaler=(np.full(128, -40.0), np.full(128, 20.0)), batch_size=256, device="cpu")
S = torch.randn(256, 2, 216, 128)
for _ in range(2):
    ex.slice_features(S)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
ex.slice_features(S)
print(json.dumps({"policy": policy, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _faults(policy: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    env[ALLOCATOR_ENV] = policy
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_retained_memory_is_reused_without_page_faults():
    system, retain = _faults("system"), _faults("retain")
    assert system["policy"] == "system" and retain["policy"] == "retain"
    if system["faults"] < 1000:  # transparent huge pages for every allocation ("always"): nothing to save
        pytest.skip(f"glibc's default faulted only {system['faults']} times here")
    # typically 138k faults against none; a block that no longer fits a freed hole (heap
    # fragmentation, which depends on the address layout) can still fault in a tenth of them
    assert retain["faults"] < system["faults"] / 4


def test_allocator_policy_is_checked(monkeypatch):
    with pytest.raises(MtdtlError, match="allocator policy"):
        retain_cpu_memory("sometimes")
    monkeypatch.setenv(ALLOCATOR_ENV, "never")
    with pytest.raises(MtdtlError, match=ALLOCATOR_ENV):
        retain_cpu_memory()
