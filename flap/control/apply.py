"""`apply_controls`: one call that turns audio-generated (or tracked) coefficients into the final condition.

This is the user-edit box of the data flow in docs/DESIGN.md (paper Sec. 4.1, Fig. 1, Fig. 4,
Sec. 5.6.1). Steps, in order:

1. ``pose_from``: head motion (``global_rot``) taken from another source (resampled to the input's
   length; ``extend`` = ``hold`` or ``loop`` when shorter).
2. ``expression_from``: expression (``c_exp``: eyes, jaw, eyelids, ψ) from another source.
3. Per-part scaling: ``expression_scale``, ``jaw_scale``, ``pose_scale``, ``eyelid_scale``.
4. ``pose``: a pose script (bundled name such as ``nod``, a path, a mapping or a
   :class:`~flap.control.script.PoseScript`) applied with the script's mode (replace / overlay /
   fixed). ``None`` leaves the pose alone (so does the bundled ``none``: a zero overlay).
5. Eyelids: ``eyelids="audio"`` keeps the source's eyelids; otherwise ``blinks_per_minute`` (a
   number ≥ 0, 0 = no blinks) writes blink eyelids with ``seed``; ``None`` keeps the source's.

Sources (``pose_from`` / ``expression_from``) are ``None`` or ``"audio"`` (keep the input), a
:class:`~flap.flame.HeadCoeffs`, a ``.npz`` / ``.safetensors`` coefficient file, a video or image
(tracked with :mod:`flap.tracking`), or an array ``(T, 120)`` / ``(T, 100)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from flap.control.blinks import apply_blinks
from flap.control.pose import apply_pose_track
from flap.control.script import PoseScript, load_pose_script
from flap.control.sources import fit_length, load_coeffs, mix_pose_expression, scale_parts
from flap.flame.coeffs import C_MOTION_SLICE, HeadCoeffs

__all__ = ["CONTROL_KEYS", "ControlConfig", "apply_controls"]

EYELID_MODES = ("auto", "audio", "blinks")


@dataclass
class ControlConfig:
    """User controls, one field per Hydra key of the same name (see the module docstring).

    Attributes:
        pose: pose script (name, path, mapping, PoseScript) or ``None``.
        pose_from: source of the head motion, ``None``/``"audio"`` = the input coefficients.
        expression_from: source of the expression, ``None``/``"audio"`` = the input coefficients.
        extend: ``"hold"`` or ``"loop"`` a source shorter than the input.
        expression_scale, jaw_scale, pose_scale, eyelid_scale: per-part multipliers (≥ 0, 1 = as is).
        blinks_per_minute: ``None`` (keep the source's eyelids) or a rate ≥ 0 (0 = no blinks).
        eyelids: ``"auto"`` (blinks if ``blinks_per_minute`` is set), ``"audio"`` (always keep the
            source's eyelids) or ``"blinks"`` (needs ``blinks_per_minute``).
        seed: random seed of the blink timing and of Audio2Flame's sampled head motion (audio-driven mode).
    """

    pose: Any = None
    pose_from: Any = None
    expression_from: Any = None
    extend: str = "hold"
    expression_scale: float = 1.0
    jaw_scale: float = 1.0
    pose_scale: float = 1.0
    eyelid_scale: float = 1.0
    blinks_per_minute: float | None = None
    eyelids: str = "auto"
    seed: int = 0

    def pose_script(self) -> PoseScript | None:
        """The pose script to apply (``pose``), loaded and validated, or ``None``.

        Call it early to fail fast on a bad script (raises like :func:`load_pose_script`).
        """
        return None if self.pose is None else load_pose_script(self.pose)

    @classmethod
    def from_mapping(cls, cfg: Mapping | None, strict: bool = True) -> ControlConfig:
        """Build from a dict or OmegaConf ``DictConfig``.

        With ``strict=False`` keys that are not controls are ignored (so a whole generation config
        can be passed); with ``strict=True`` they raise ``ValueError`` naming the key.
        """
        if cfg is None:
            return cls()
        if not isinstance(cfg, Mapping):  # OmegaConf DictConfig is a Mapping
            raise TypeError(f"controls: expected a mapping or ControlConfig, got {type(cfg).__name__}")
        unknown = sorted(set(cfg) - set(CONTROL_KEYS))
        if unknown and strict:
            raise ValueError(f"controls: unknown key {unknown[0]!r} (allowed: {', '.join(CONTROL_KEYS)})")
        return cls(**{k: v for k, v in cfg.items() if k in CONTROL_KEYS})


CONTROL_KEYS = tuple(f.name for f in fields(ControlConfig))


def _is_input(source) -> bool:
    return source is None or (isinstance(source, str) and source in ("audio", "input", "none"))


def apply_controls(
    coeffs: HeadCoeffs,
    cfg: ControlConfig | Mapping | None = None,
    *,
    strict: bool = True,
    **overrides,
) -> HeadCoeffs:
    """Apply user controls to ``coeffs`` and return the final condition (a new HeadCoeffs).

    Args:
        coeffs: ``(T, 120)`` coefficients from Audio2Flame or a tracker; its length and fps define
            the output's. Not modified.
        cfg: a :class:`ControlConfig`, a dict / ``DictConfig`` with its keys, or ``None``.
        strict: for mappings, reject keys that are not controls (``False`` ignores them).
        **overrides: control keys overriding ``cfg`` (e.g. ``pose="nod", blinks_per_minute=12``).

    Returns:
        :class:`HeadCoeffs` with ``T`` frames at ``coeffs.fps``.

    Raises:
        ValueError: unknown key, bad scale / rate / mode, invalid pose script
            (:class:`~flap.control.script.PoseScriptError` naming the file and key).
        FileNotFoundError: missing script or source file.

    Example::

        final = apply_controls(audio_coeffs, pose="look_around", blinks_per_minute=12,
                               expression_from="tracked.npz", jaw_scale=1.2)
    """
    if isinstance(cfg, ControlConfig):
        config = cfg
    else:
        config = ControlConfig.from_mapping(cfg, strict=strict)
    if overrides:
        unknown = sorted(set(overrides) - set(CONTROL_KEYS))
        if unknown:
            raise ValueError(f"controls: unknown key {unknown[0]!r} (allowed: {', '.join(CONTROL_KEYS)})")
        config = replace(config, **overrides)
    if config.eyelids not in EYELID_MODES:
        raise ValueError(f"controls: eyelids must be one of {EYELID_MODES}, got {config.eyelids!r}")
    if config.eyelids == "blinks" and config.blinks_per_minute is None:
        raise ValueError("controls: eyelids='blinks' needs blinks_per_minute (a number >= 0)")

    out = coeffs.clone()
    if not _is_input(config.pose_from):
        motion = fit_length(load_coeffs(config.pose_from, out.fps), out.num_frames, out.fps, config.extend)
        out.data[:, C_MOTION_SLICE] = motion.data[:, C_MOTION_SLICE].to(out.data)
    if not _is_input(config.expression_from):
        out = mix_pose_expression(out, load_coeffs(config.expression_from, out.fps), config.extend)
    out = scale_parts(
        out,
        expression_scale=float(config.expression_scale),
        jaw_scale=float(config.jaw_scale),
        pose_scale=float(config.pose_scale),
        eyelid_scale=float(config.eyelid_scale),
    )
    script = config.pose_script()
    if script is not None:
        out = apply_pose_track(out, script.sample(out.num_frames, out.fps), mode=script.mode)
    if config.eyelids != "audio" and config.blinks_per_minute is not None:
        out = apply_blinks(out, float(config.blinks_per_minute), seed=int(config.seed))
    return out
