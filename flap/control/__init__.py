"""flap.control: user controls on FLAME coefficients (paper Sec. 4.1, Fig. 1, Fig. 4, Sec. 5.6.1).

* :func:`apply_controls` / :class:`ControlConfig`: the one call used by generation (pose script,
  pose and expression sources, per-part scales, blinks).
* :func:`apply_pose` / :func:`apply_pose_track`: per-frame pitch / yaw / roll overrides, modes
  ``replace``, ``overlay`` (``R = R_user @ R_source`` on SO(3)) and ``fixed``.
* :func:`load_pose_script` / :class:`PoseScript`: YAML keyframe scripts (bundled in ``flap/control/poses/``).
* :func:`blink_track` / :func:`apply_blinks`: blinks at a chosen rate.
* :func:`load_coeffs`, :func:`fit_length`, :func:`mix_pose_expression`, :func:`scale_parts`: sources
  and mixing.
* :func:`write_preview`, :func:`iter_preview_frames`, :func:`script_coeffs`: mesh previews
  (:mod:`flap.control.preview`, imported on use).
"""

from flap.control.apply import CONTROL_KEYS, ControlConfig, apply_controls
from flap.control.blinks import apply_blinks, blink_shape, blink_track
from flap.control.pose import POSE_MODES, apply_pose, apply_pose_track, scale_rotation
from flap.control.script import (
    EASINGS,
    Keyframe,
    PoseScript,
    PoseScriptError,
    bundled_pose_scripts,
    ease,
    load_pose_script,
)
from flap.control.sources import fit_length, load_coeffs, mix_pose_expression, scale_parts

__all__ = [
    "CONTROL_KEYS",
    "EASINGS",
    "POSE_MODES",
    "ControlConfig",
    "Keyframe",
    "PoseScript",
    "PoseScriptError",
    "apply_blinks",
    "apply_controls",
    "apply_pose",
    "apply_pose_track",
    "blink_shape",
    "blink_track",
    "bundled_pose_scripts",
    "ease",
    "fit_length",
    "load_coeffs",
    "load_pose_script",
    "mix_pose_expression",
    "scale_parts",
    "scale_rotation",
]
