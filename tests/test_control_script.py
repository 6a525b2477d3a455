"""Pose scripts (flap.control.script): keyframes, easing, repeat/hold, bundled scripts, bad-script errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from flap.control import (
    PoseScript,
    PoseScriptError,
    apply_controls,
    bundled_pose_scripts,
    ease,
    load_pose_script,
)
from flap.control.script import POSE_DIR
from flap.flame.coeffs import HeadCoeffs

BUNDLED = ["nod", "shake", "turn_left", "turn_right", "look_around", "tilt", "fixed_front", "none"]


def _write(tmp_path, text, name="script.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_all_bundled_scripts_exist_and_load():
    assert set(BUNDLED) <= set(bundled_pose_scripts())
    for name in BUNDLED:
        for spec in (name, f"{name}.yaml", POSE_DIR / f"{name}.yaml"):
            script = load_pose_script(spec)
            assert script.name == name and script.keyframes
            track = script.sample(300, 25.0)
            assert track.shape == (300, 3) and np.isfinite(track).all() and np.abs(track).max() <= 180


def test_nod_gives_exact_keyframe_pitch_at_keyframes():
    script = load_pose_script("nod")
    fps = 25.0
    track = script.sample(200, fps)
    for key in script.keyframes:
        frame = round(key.time * fps)
        assert frame / fps == key.time  # the bundled nod has keyframes on frame times
        assert track[frame, 0] == key.pitch  # exactly, not approximately
        assert track[frame, 1] == 0.0 and track[frame, 2] == 0.0
    # Repeat: the loop (period 3 s = 75 frames) hits the keyframes again exactly.
    for key in script.keyframes[:-1]:
        assert track[round(key.time * fps) + 75, 0] == key.pitch
    # Through the whole pipeline: on neutral coefficients the pitch at keyframes is the keyframe pitch.
    out = apply_controls(HeadCoeffs.neutral(200, fps, dtype=torch.float64), pose="nod.yaml")
    np.testing.assert_allclose(
        out.pose_degrees().numpy()[[8, 16, 24, 83]],
        [[12, 0, 0], [0, 0, 0], [10, 0, 0], [12, 0, 0]],
        atol=1e-9,
    )


def test_interpolation_hand_computed(tmp_path):
    path = _write(
        tmp_path,
        "mode: replace\nkeyframes:\n"
        "  - {frame: 0, yaw: 0, easing: linear}\n"
        "  - {frame: 10, yaw: 20, easing: ease-in-out}\n"
        "  - {frame: 20, yaw: 0, easing: hold}\n"
        "  - {frame: 24, yaw: 8}\n",
    )
    s = load_pose_script(path)
    assert s.name == "script" and s.mode == "replace" and not s.repeat
    y = s.sample(30, 25.0)[:, 1]
    np.testing.assert_allclose(y[:11], np.arange(11) * 2.0)  # linear 0 -> 20
    # ease-in-out from 20 to 0 over frames 10..20: 20 - 20 (1 - cos(pi u)) / 2 at u = 0.5 -> 10.
    assert y[15] == pytest.approx(10.0)
    assert y[12] == pytest.approx(20 - 20 * (1 - np.cos(np.pi * 0.2)) / 2)
    np.testing.assert_array_equal(y[20:24], 0.0)  # hold until the next keyframe, then jump
    np.testing.assert_array_equal(y[24:], 8.0)  # after the last keyframe: hold (repeat false)


def test_repeat_loops_and_hold_holds(tmp_path):
    text = "repeat: {r}\neasing: linear\nkeyframes:\n  - {{t: 0, roll: 0}}\n  - {{t: 0.4, roll: 10}}\n"
    looped = load_pose_script(_write(tmp_path, text.format(r="true"), "a.yaml")).sample(25, 25.0)[:, 2]
    held = load_pose_script(_write(tmp_path, text.format(r="false"), "b.yaml")).sample(25, 25.0)[:, 2]
    np.testing.assert_allclose(looped[:11], np.arange(11) * 10 / 10)  # period 0.4 s = 10 frames
    np.testing.assert_allclose(looped[11:21], looped[1:11])
    np.testing.assert_array_equal(held[10:], 10.0)


def test_script_from_omegaconf_mapping():
    cfg = OmegaConf.create({"mode": "fixed", "keyframes": [{"t": 0, "yaw": 15}]})
    script = load_pose_script(cfg)
    np.testing.assert_array_equal(script.sample(3, 25.0), [[0, 15, 0]] * 3)
    assert PoseScript.from_dict({"keyframes": [{"t": 0}]}).mode == "overlay"


@pytest.mark.parametrize(
    "text, key",
    [
        ("keyframes:\n  - {t: 0, pitch: 1}\nspeed: 2\n", "'speed'"),
        ("keyframes:\n  - {t: 0, pich: 1}\n", "'pich'"),
        ("keyframes:\n  - {t: 0, yaw: 190}\n", "'yaw'"),
        ("keyframes:\n  - {t: 0, roll: -180.5}\n", "'roll'"),
        ("keyframes:\n  - {t: 1.0}\n  - {t: 0.5}\n", "keyframes[1].t"),
        ("keyframes:\n  - {frame: 3}\n  - {frame: 3}\n", "keyframes[1].frame"),
        ("keyframes: []\n", "'keyframes'"),
        ("mode: overlay\n", "'keyframes'"),
        ("keyframes:\n  - {t: 0, pitch: [1\n", "not valid YAML"),
        ("mode: add\nkeyframes:\n  - {t: 0}\n", "'mode'"),
        ("keyframes:\n  - {t: 0, easing: bounce}\n", "'easing'"),
        ("keyframes:\n  - {t: 0, pitch: ten}\n", "'pitch'"),
        ("keyframes:\n  - {pitch: 1}\n", "'t'"),
        ("mode: fixed\nkeyframes:\n  - {t: 0}\n  - {t: 1}\n", "'mode'"),
        ("- just\n- a list\n", "mapping"),
    ],
)
def test_bad_scripts_name_file_and_key(tmp_path, text, key):
    path = _write(tmp_path, text, "bad_script.yaml")
    with pytest.raises(PoseScriptError) as info:
        load_pose_script(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg, msg


def test_missing_script_lists_bundled():
    with pytest.raises(FileNotFoundError, match="nod"):
        load_pose_script("no_such_script")


@settings(max_examples=80, deadline=None)
@given(
    a=st.floats(-180, 180),
    b=st.floats(-180, 180),
    dt=st.floats(0.05, 5.0),
    easing=st.sampled_from(["linear", "ease-in-out", "hold"]),
    fps=st.sampled_from([12.5, 25.0, 30.0, 60.0]),
)
def test_property_interpolation_monotone_and_in_range(a, b, dt, easing, fps):
    """Between two keyframes the value is monotone in time and stays within [min(a, b), max(a, b)]."""
    script = PoseScript.from_dict(
        {"easing": easing, "keyframes": [{"t": 0.0, "pitch": a}, {"t": dt, "pitch": b}]}
    )
    n = int(dt * fps) + 2
    p = script.sample(n, fps)[:, 0]
    lo, hi = min(a, b), max(a, b)
    assert (p >= lo - 1e-9).all() and (p <= hi + 1e-9).all()
    d = np.diff(p)
    assert (d * np.sign(b - a) >= -1e-9).all()
    assert p[0] == a and p[-1] == b


@settings(max_examples=50, deadline=None)
@given(
    u=st.lists(st.floats(0, 1), min_size=2, max_size=20),
    easing=st.sampled_from(["linear", "ease-in-out", "hold"]),
)
def test_property_easing_monotone_unit(u, easing):
    u = np.sort(np.asarray(u))
    e = ease(u, easing)
    assert (np.diff(e) >= -1e-12).all() and (e >= 0).all() and (e <= 1).all()
    assert ease(np.array([0.0]), easing)[0] == 0.0 and ease(np.array([1.0]), easing)[0] == 1.0
