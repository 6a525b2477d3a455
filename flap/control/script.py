"""Pose scripts: YAML keyframes of head pitch / yaw / roll (degrees) sampled per frame.

A script (bundled in ``flap/control/poses/`` or any path) looks like::

    description: nod twice a second      # optional free text
    mode: overlay                        # replace | overlay | fixed (see flap.control.pose)
    repeat: true                         # loop; false = hold the last pose (default false)
    easing: ease-in-out                  # default easing of the keyframes (default ease-in-out)
    keyframes:
      - {t: 0.0, pitch: 0}               # t in seconds, or `frame: 12` (one kind per script)
      - {t: 0.25, pitch: 12, easing: linear}
      - {t: 0.5, pitch: 0}

Keyframe keys: ``t`` (seconds) or ``frame`` (int), ``pitch``, ``yaw``, ``roll`` (degrees in
[-180, 180], default 0) and ``easing`` (``linear``, ``ease-in-out`` or ``hold``). A keyframe's easing
shapes the segment that *leaves* it; ``hold`` keeps its pose until the next keyframe. Each angle is
interpolated on its own, so a value between two keyframes stays between their two values (and is
monotone in time). Before the first keyframe the first pose holds; after the last one the last
pose holds, or with ``repeat: true`` the script loops with period = time of the last keyframe
(each loop covers ``(0, period]``, so the start pose is shown only at ``t = 0``: close the loop by
ending on the first pose). A
script longer than the clip is cut. ``mode: fixed`` takes exactly one keyframe.

Errors (:class:`PoseScriptError`, a ``ValueError``) name the file and the key: unknown key, angle
outside ±180°, times not strictly increasing, no keyframes, not YAML, wrong types.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from flap.errors import InputError, InputNotFoundError

__all__ = [
    "EASINGS",
    "POSE_DIR",
    "Keyframe",
    "PoseScript",
    "PoseScriptError",
    "bundled_pose_scripts",
    "ease",
    "load_pose_script",
]

#: Folder of the bundled scripts (``flap/control/poses/``, package data).
POSE_DIR = Path(__file__).resolve().parent / "poses"
EASINGS = ("linear", "ease-in-out", "hold")
SCRIPT_MODES = ("replace", "overlay", "fixed")
_SCRIPT_KEYS = {"name", "description", "mode", "repeat", "easing", "keyframes"}
_KEYFRAME_KEYS = {"t", "frame", "pitch", "yaw", "roll", "easing"}
ANGLES = ("pitch", "yaw", "roll")


class PoseScriptError(InputError):
    """A pose script is invalid; the message names the file (or source) and the key."""


@dataclass(frozen=True)
class Keyframe:
    """One keyframe: ``time`` in seconds *or* ``frame`` index, angles in degrees, outgoing easing."""

    time: float | None = None
    frame: int | None = None
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    easing: str = "ease-in-out"

    def seconds(self, fps: float) -> float:
        """Keyframe time in seconds at ``fps`` frames per second."""
        return float(self.time) if self.time is not None else self.frame / fps

    @property
    def angles(self) -> tuple[float, float, float]:
        return (self.pitch, self.yaw, self.roll)


@dataclass(frozen=True)
class PoseScript:
    """A validated pose script (see module docs). Build with :func:`load_pose_script` or :meth:`from_dict`."""

    keyframes: tuple[Keyframe, ...]
    mode: str = "overlay"
    repeat: bool = False
    name: str = ""
    description: str = ""
    source: str = field(default="<dict>", compare=False)

    @classmethod
    def from_dict(cls, data, source: str = "<dict>") -> PoseScript:
        """Validate a mapping (plain dict or OmegaConf ``DictConfig``) into a script.

        Raises:
            PoseScriptError: naming ``source`` and the offending key.
        """
        return _parse(data, source)

    def duration(self, fps: float) -> float:
        """Time of the last keyframe in seconds."""
        return self.keyframes[-1].seconds(fps)

    def sample(self, num_frames: int, fps: float) -> np.ndarray:
        """Pitch / yaw / roll degrees ``(num_frames, 3)`` float64 at frame times ``i / fps`` seconds."""
        if num_frames < 0:
            raise ValueError(f"PoseScript.sample: num_frames must be >= 0, got {num_frames}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"PoseScript.sample: fps must be > 0, got {fps}")
        times = np.arange(num_frames, dtype=np.float64) / fps
        key_t = np.array([k.seconds(fps) for k in self.keyframes])
        period = key_t[-1]
        if self.repeat and period > 0:
            # Each loop covers (0, period]: the end pose is shown, the start pose only at t = 0.
            looped = np.mod(times, period)
            on_boundary = (looped < 1e-9) | (looped > period - 1e-9)
            times = np.where(times > period, np.where(on_boundary, period, looped), times)
        # Snap round-off (0.72 mod 0.48 = 0.2399999...) so frames on keyframe times hit them exactly.
        near = np.abs(times[:, None] - key_t[None, :]) < 1e-9
        times = np.where(near.any(axis=1), key_t[near.argmax(axis=1)], times)
        return _interpolate(times, key_t, np.array([k.angles for k in self.keyframes]), self.keyframes)


def ease(u: np.ndarray, easing: str) -> np.ndarray:
    """Easing curve on ``u`` in [0, 1] → [0, 1], monotone non-decreasing with ``ease(0)=0``.

    ``linear``: ``u``; ``ease-in-out``: ``(1 - cos(π u)) / 2`` (smooth start and stop); ``hold``: 0
    until the next keyframe (a step). Raises ValueError for an unknown easing.
    """
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    if easing == "linear":
        return u
    if easing == "ease-in-out":
        return 0.5 - 0.5 * np.cos(np.pi * u)
    if easing == "hold":
        return np.where(u >= 1.0, 1.0, 0.0)
    raise ValueError(f"unknown easing {easing!r}, expected one of {EASINGS}")


def _interpolate(times: np.ndarray, key_t: np.ndarray, key_v: np.ndarray, keys) -> np.ndarray:
    """Per-angle keyframe interpolation at ``times`` (seconds) → ``(len(times), 3)``."""
    out = np.empty((len(times), 3))
    seg = np.clip(np.searchsorted(key_t, times, side="right") - 1, 0, len(key_t) - 1)
    before = times <= key_t[0]
    after = seg >= len(key_t) - 1
    out[before] = key_v[0]
    out[after & ~before] = key_v[-1]
    mid = ~(before | after)
    if mid.any():
        s = seg[mid]
        u = (times[mid] - key_t[s]) / (key_t[s + 1] - key_t[s])
        w = np.empty_like(u)
        for easing in EASINGS:
            m = np.array([keys[i].easing == easing for i in s])
            if m.any():
                w[m] = ease(u[m], easing)
        out[mid] = key_v[s] + w[:, None] * (key_v[s + 1] - key_v[s])
    return out


# --------------------------------------------------------------------------- loading / validation
def bundled_pose_scripts() -> list[str]:
    """Names of the scripts shipped in ``flap/control/poses/`` (without ``.yaml``)."""
    return sorted(p.stem for p in POSE_DIR.glob("*.yaml"))


def _resolve(name_or_path: str | os.PathLike) -> Path:
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    stem = text[:-5] if text.endswith(".yaml") else text[:-4] if text.endswith(".yml") else text
    if os.sep not in text and "/" not in text:
        bundled = POSE_DIR / f"{stem}.yaml"
        if bundled.is_file():
            return bundled
    raise InputNotFoundError(
        f"pose script {text!r}: no such file, and not a bundled script (bundled: {', '.join(bundled_pose_scripts())})"
    )


def load_pose_script(script) -> PoseScript:
    """Load a pose script from a bundled name (``"nod"`` or ``"nod.yaml"``), a path, a mapping or a script.

    Args:
        script: a :class:`PoseScript` (returned as is), a ``dict`` / OmegaConf ``DictConfig`` with
            the script keys, or a ``str`` / ``Path``: an existing file, else a name in ``flap/control/poses/``.

    Raises:
        FileNotFoundError: neither a file nor a bundled name (the message lists the bundled ones).
        PoseScriptError: invalid content; the message names the file and the key.
    """
    if isinstance(script, PoseScript):
        return script
    if isinstance(script, Mapping) or _is_dictconfig(script):
        return _parse(script, "<pose config>")
    if not isinstance(script, (str, os.PathLike)):
        raise TypeError(
            f"load_pose_script: expected a name, path, mapping or PoseScript, got {type(script).__name__}"
        )
    path = _resolve(script)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PoseScriptError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise PoseScriptError(f"{path}: not valid YAML (not UTF-8 text): {exc}") from exc
    parsed = _parse(data, str(path))
    return parsed if parsed.name else PoseScript(**{**parsed.__dict__, "name": path.stem})


def _is_dictconfig(obj) -> bool:
    try:
        from omegaconf import DictConfig
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return False
    return isinstance(obj, DictConfig)


def _to_plain(data):
    if _is_dictconfig(data):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(data, resolve=True)
    return data


#: a decimal number as YAML 1.2 writes it; PyYAML (YAML 1.1) reads ``1e9`` (no dot) as a string
_YAML12_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _number(value, where: str, key: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, str) and _YAML12_FLOAT.fullmatch(value.strip()):
        value = float(value)  # `yaw: 1e9` is a number in YAML 1.2, a string in PyYAML's YAML 1.1
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PoseScriptError(f"{where}: key {key!r} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise PoseScriptError(f"{where}: key {key!r} must be finite, got {value}")
    if lo is not None and not lo <= value <= hi:
        raise PoseScriptError(f"{where}: key {key!r} = {value:g} is outside [{lo:g}, {hi:g}] degrees")
    return value


def _parse(data, source: str) -> PoseScript:
    data = _to_plain(data)
    if not isinstance(data, Mapping):
        raise PoseScriptError(
            f"{source}: expected a YAML mapping with a 'keyframes' list, got {type(data).__name__}"
        )
    unknown = sorted(set(data) - _SCRIPT_KEYS)
    if unknown:
        raise PoseScriptError(
            f"{source}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_SCRIPT_KEYS))})"
        )
    mode = data.get("mode", "overlay")
    if mode not in SCRIPT_MODES:
        raise PoseScriptError(f"{source}: key 'mode' must be one of {SCRIPT_MODES}, got {mode!r}")
    repeat = data.get("repeat", False)
    if not isinstance(repeat, bool):
        raise PoseScriptError(f"{source}: key 'repeat' must be true or false, got {repeat!r}")
    default_easing = data.get("easing", "ease-in-out")
    if default_easing not in EASINGS:
        raise PoseScriptError(f"{source}: key 'easing' must be one of {EASINGS}, got {default_easing!r}")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise PoseScriptError(f"{source}: key {key!r} must be a string, got {data[key]!r}")
    raw = data.get("keyframes")
    if raw is None or (isinstance(raw, list) and not raw):
        raise PoseScriptError(f"{source}: key 'keyframes' has no keyframes (need a list of at least one)")
    if not isinstance(raw, list):
        raise PoseScriptError(f"{source}: key 'keyframes' must be a list, got {type(raw).__name__}")
    keys = [_parse_keyframe(k, f"{source}: keyframes[{i}]", default_easing) for i, k in enumerate(raw)]
    kinds = {"t" if k.time is not None else "frame" for k in keys}
    if len(kinds) > 1:
        raise PoseScriptError(f"{source}: key 'keyframes' mixes 't' (seconds) and 'frame'; use one kind")
    kind = kinds.pop()
    for i in range(1, len(keys)):
        prev, cur = (keys[i - 1].time, keys[i].time) if kind == "t" else (keys[i - 1].frame, keys[i].frame)
        if cur <= prev:
            raise PoseScriptError(
                f"{source}: keyframes[{i}].{kind} = {cur:g} is not after keyframes[{i - 1}].{kind} = {prev:g}"
                " (times must be strictly increasing)"
            )
    if mode == "fixed" and len(keys) != 1:
        raise PoseScriptError(
            f"{source}: key 'mode' is 'fixed' (one constant pose) but 'keyframes' has {len(keys)}"
        )
    return PoseScript(
        keyframes=tuple(keys),
        mode=mode,
        repeat=repeat,
        name=data.get("name", ""),
        description=data.get("description", ""),
        source=source,
    )


def _parse_keyframe(raw, where: str, default_easing: str) -> Keyframe:
    if not isinstance(raw, Mapping):
        raise PoseScriptError(f"{where}: expected a mapping like {{t: 0.5, pitch: 10}}, got {raw!r}")
    unknown = sorted(set(raw) - _KEYFRAME_KEYS)
    if unknown:
        raise PoseScriptError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_KEYFRAME_KEYS))})"
        )
    if ("t" in raw) == ("frame" in raw):
        raise PoseScriptError(f"{where}: give exactly one of key 't' (seconds) or key 'frame'")
    time = frame = None
    if "t" in raw:
        time = _number(raw["t"], where, "t")
        if time < 0:
            raise PoseScriptError(f"{where}: key 't' must be >= 0 seconds, got {time:g}")
    else:
        frame = raw["frame"]
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise PoseScriptError(f"{where}: key 'frame' must be an integer >= 0, got {frame!r}")
    angles = {a: _number(raw.get(a, 0.0), where, a, -180.0, 180.0) for a in ANGLES}
    easing = raw.get("easing", default_easing)
    if easing not in EASINGS:
        raise PoseScriptError(f"{where}: key 'easing' must be one of {EASINGS}, got {easing!r}")
    return Keyframe(time=time, frame=frame, easing=easing, **angles)
