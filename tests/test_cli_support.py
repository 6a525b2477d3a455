"""``flap.cli_support``: Lightning's messages are printed once under Hydra's logging."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import logging
logging.basicConfig(format="root: %(message)s")   # stands in for Hydra's console handler
import lightning
from flap.cli_support import single_lightning_log
if {fix}:
    single_lightning_log()
logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False")
"""


@pytest.mark.parametrize("fix, copies", [(False, 2), (True, 1)])
def test_lightning_lines_printed_once(fix, copies):
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(fix=fix)], capture_output=True, text=True, check=True)
    assert proc.stderr.count("GPU available: False") == copies, proc.stderr
