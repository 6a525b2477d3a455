"""dlib identity distance and face rate (flap.eval.dlib_face) on real frames and portraits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from flap.eval.dlib_face import (
    SAME_PERSON_THRESHOLD,
    identity_distance,
    models_dir,
    reference_descriptor,
    sample_indices,
)


def test_models_dir_found_without_importing_the_package():
    code = (
        "import sys; from flap.eval.dlib_face import models_dir; d = models_dir(); "
        "assert (d / 'dlib_face_recognition_resnet_model_v1.dat').is_file(); "
        "assert 'face_recognition_models' not in sys.modules and 'pkg_resources' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert models_dir().name == "models"


def test_sample_indices():
    assert sample_indices(10, 3).tolist() == [0, 4, 9]  # 4.5 rounds to even
    assert sample_indices(3, 16).tolist() == [0, 1, 2]
    assert sample_indices(5, 0).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(0, 4).tolist() == []


@pytest.fixture(scope="module")
def grid_frames(shared_data):
    from flap.io.video import read_video

    frames, _ = read_video(shared_data / "video" / "grid" / "bbaf2n.mpg")
    return frames


def test_same_clip_is_same_person(grid_frames, shared_data):
    from flap.io.video import read_video

    d = identity_distance(grid_frames[60:61], grid_frames[0])
    assert d["face_detected_ratio_dlib"] == 1.0
    assert d["identity_distance"] < 0.45
    frames, _ = read_video(shared_data / "video" / "motion" / "lp_d12.mp4", max_frames=121)
    d = identity_distance(frames[[40, 80, 120]], frames[0])
    assert d["frames_sampled"] == 3 and d["face_detected_ratio_dlib"] == 1.0
    assert d["identity_distance"] < 0.45 and d["identity_distance_max"] < 0.45


def test_other_people_are_far(grid_frames, shared_data):
    """A GRID speaker (bbaf2n) against every shared portrait of someone else: > 0.6 (dlib's threshold)."""
    others = [p for p in sorted((shared_data / "portraits").iterdir()) if "bbaf2n" not in p.name]
    assert len(others) >= 5
    frame = grid_frames[30:31]
    for portrait in others:
        d = identity_distance(frame, reference_descriptor(portrait))
        assert d["identity_distance"] > SAME_PERSON_THRESHOLD, portrait.name
    own = identity_distance(frame, shared_data / "portraits" / "grid_bbaf2n_frame.png")
    assert own["identity_distance"] < 0.45


def test_no_face_counts_in_the_ratio(grid_frames):
    blank = np.full((2, 288, 360, 3), 127, np.uint8)
    d = identity_distance(np.concatenate([grid_frames[:2], blank]), grid_frames[0], max_frames=0)
    assert d["frames_sampled"] == 4 and d["face_detected_ratio_dlib"] == 0.5
    d = identity_distance(blank, grid_frames[0])
    assert d["face_detected_ratio_dlib"] == 0.0 and np.isnan(d["identity_distance"])


def test_reference_without_face_names_the_file(tmp_path):
    from PIL import Image

    path = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 90, np.uint8)).save(path)
    with pytest.raises(ValueError, match="wall.png"):
        reference_descriptor(path)


def test_evaluate_reports_dlib_identity(grid_frames, shared_data, tmp_path):
    """``flap.evaluate`` puts ``identity_distance`` and ``face_detected_ratio_dlib`` in metrics.json
    (stand-in tracker of tests/test_eval_cli.py: 30 frames; the frames are 30 real GRID frames)."""
    import json

    from flap.evaluate import run
    from flap.io.video import write_video
    from tests.test_eval_cli import FPS, T, _cfg, _request

    video = write_video(tmp_path / "gen.mp4", grid_frames[:T], FPS)
    _request().save(tmp_path / "gen.mp4.coeffs.npz")
    ref = shared_data / "portraits" / "grid_bbaf2n_frame.png"
    run(_cfg(video, tmp_path / "a", reference=str(ref)))
    res = json.loads((tmp_path / "a" / "metrics.json").read_text())["videos"][0]
    assert res["face_detected_ratio_dlib"] == 1.0 and res["identity_distance"] < 0.45
    assert "identity distance to reference (dlib" in (tmp_path / "a" / "table.md").read_text()
    other = shared_data / "portraits" / "grid_lbax4n_frame.png"
    res = run(_cfg(video, tmp_path / "b", reference=str(other)))["videos"][0]
    assert res["identity_distance"] > SAME_PERSON_THRESHOLD
    res = run(_cfg(video, tmp_path / "c"))["videos"][0]  # no reference: face rate only
    assert res["face_detected_ratio_dlib"] == 1.0 and "identity_distance" not in res
    assert res["skipped"]["identity_distance"]["key"] == "reference"
