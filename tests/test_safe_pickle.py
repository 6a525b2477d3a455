"""Loading FLAME pickles never executes code from the file; chumpy objects load without chumpy."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flap.flame.safe_pickle import UnsafePickleError, safe_load_npy, safe_load_pickle

DATA = Path(__file__).parent / "data"


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "generic_model.pkl"
    bad.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3)), "x": _Evil(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"generic_model\.pkl.*system"):
        safe_load_pickle(bad)
    from flap.flame.model import FlameModel

    with pytest.raises(UnsafePickleError, match="generic_model.pkl"):
        FlameModel(bad)
    assert not marker.exists()


def test_malicious_object_npy_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.empty((), dtype=object)
    arr[()] = {"lmk_face_idx": _Evil(marker)}
    path = tmp_path / "embedding.npy"
    np.save(path, arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="embedding.npy"):
        safe_load_npy(path)
    assert not marker.exists()


def test_not_a_pickle_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not a pickle")
    with pytest.raises(ValueError, match=r"model\.pkl: not a readable pickle"):
        safe_load_pickle(path)


def test_chumpy_pickle_loads_without_chumpy():
    """tests/data/chumpy_flame_like.pkl was written by real chumpy (chumpy-fixed 0.71, protocol 2)."""
    code = (
        "import sys; sys.modules['chumpy'] = None\n"  # any 'import chumpy' now fails
        "import numpy as np\n"
        "from flap.flame.safe_pickle import safe_load_pickle\n"
        f"d = safe_load_pickle({str(DATA / 'chumpy_flame_like.pkl')!r})\n"
        f"e = np.load({str(DATA / 'chumpy_flame_like_expected.npz')!r})\n"
        "for k in e.files:\n"
        "    v = d[k].toarray() if hasattr(d[k], 'toarray') else d[k]\n"
        "    assert type(v) is np.ndarray and np.array_equal(v, e[k]), k\n"
        "print('ok', sorted(d))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "shapedirs" in out.stdout and "v_template" in out.stdout


def test_shipped_embeddings_load_safely():
    dyn = safe_load_npy(Path(__file__).parents[1] / "flap/flame/data/ringnet_flame_dynamic_embedding.npy")
    assert np.asarray(dyn["lmk_face_idx"]).shape == (79, 17)
    assert np.asarray(dyn["lmk_b_coords"]).shape == (79, 17, 3)
