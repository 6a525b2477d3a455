"""tools/benchmarks/memory.py: a subprocess's peak memory does not include its parent's (issue 12, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parents[1] / "tools"
CHILD = (
    f"import sys, json, resource; sys.path.insert(0, {str(TOOLS)!r}); from benchmarks.memory import peak_rss_mib; "
    "print(json.dumps([peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))"
)


def test_child_peak_excludes_the_parent():
    big = np.ones(600 * 2**20 // 8)  # 600 MiB, touched, held by this process while the child runs
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    hwm, maxrss = json.loads(out.stdout)
    assert big.sum() > 0
    # a bare interpreter needs tens of MiB; ru_maxrss (maxrss) reports >= 600 here on Linux, the bug fixed
    assert hwm < 300, (hwm, maxrss)
