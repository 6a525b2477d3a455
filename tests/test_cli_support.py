"""``flap.cli_support``: Lightning's messages are printed once under Hydra's logging; a mistyped
command-line key is refused in one line naming it."""

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


@pytest.mark.parametrize("config, overrides, expected", [
    ("generate", ["pose=nod", "num_inference_step=8"], "unknown key 'num_inference_step'"),
    ("finetune", ["video=a.mp4", "out=b", "stages.stage1.shares=1"], "unknown key 'stages.stage1.shares'"),
    ("generate", ["steps=[1"], "argument 'steps=[1' is not key=value"),
    ("train", ["experiment=base_stage"], "Could not find 'experiment/base_stage' (available: audio2flame, base_stage1,"),
])
def test_override_error_names_the_argument(config, overrides, expected):
    from flap.cli_support import override_error

    assert expected in override_error(config, overrides)


@pytest.mark.parametrize("config, overrides", [
    ("generate", ["pose=nod", "hydra.run.dir=x", "strength=1.0"]),
    ("train", ["experiment=base_stage1", "+logger.csv.flush_logs_every_n_steps=10", "trainer.max_steps=5"]),
    ("finetune", []),
])
def test_override_error_accepts_valid_arguments(config, overrides):
    from flap.cli_support import override_error

    assert override_error(config, overrides) is None


def test_mistyped_key_is_one_line_with_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "flap.evaluate", "video=x.mp4", "refrence=p.png"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("flap.evaluate: error: unknown key 'refrence'; "
                                   "every key: python -m flap.evaluate --help"), proc.stderr
    assert not (tmp_path / "outputs").exists()  # nothing written
