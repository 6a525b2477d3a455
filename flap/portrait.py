"""The portrait side of generation: read a portrait, cut the face crop the models see, paste back.

:func:`crop_portrait` finds the faces (MediaPipe, :func:`flap.tracking.faces.detect_faces`), checks their
size (:func:`check_portrait_image`, :func:`choose_face`) and cuts
the square head box the training data used (paper Sec. 5.1); :func:`paste_back` is its inverse for
the generated frames. No face raises :class:`flap.tracking.faces.NoFaceError` (the one class for
"no face" in FLAP).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flap.errors import InputError
from flap.tracking.faces import NoFaceError, crop_frames, detect_faces, head_box

__all__ = ["MAX_UPSCALE", "MIN_IMAGE_SIDE", "NoFaceError", "PortraitCrop", "check_portrait_image", "choose_face",
           "crop_portrait", "load_portrait", "paste_back"]

log = logging.getLogger(__name__)


@dataclass
class PortraitCrop:
    """A square face crop of a portrait.

    Attributes:
        image: ``uint8 (H, W, 3)`` RGB original.
        crop: ``uint8 (S, S, 3)`` RGB crop fed to the VAE.
        box: ``(cx, cy, side)`` of the square in original pixels.
    """

    image: np.ndarray
    crop: np.ndarray
    box: tuple[float, float, float]



#: smallest portrait side in pixels (face detection needs some pixels to work with)
MIN_IMAGE_SIDE = 32
#: largest upscaling of the head crop to the model input before the result is only blur
MAX_UPSCALE = 4.0


def check_portrait_image(image: np.ndarray, name: str = "portrait") -> None:
    """Refuse an image smaller than :data:`MIN_IMAGE_SIDE` px on a side (names the image and its size).

    Raises:
        InputError: too small.
    """
    h, w = image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(
            f"{name}: image is {w}×{h} px, expected a portrait of at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} px "
            "with a visible face"
        )


def choose_face(faces, size: int, scale: float, name: str = "portrait"):
    """The face to animate (the largest) after checking its size; ``None`` when ``faces`` is empty.

    Args:
        faces: boxes ``(x0, y0, w, h)`` px, largest first.
        size: model input side in px.
        scale: head crop side / face box side.
        name: how messages call the image.

    Raises:
        InputError: the head crop would be upscaled more than :data:`MAX_UPSCALE` times.
    """
    if not faces:
        return None
    face = faces[0]
    x0, y0, w, h = (float(v) for v in face)
    side = scale * max(w, h)
    where = f"the {w:.0f}×{h:.0f} px face at x={x0:.0f}, y={y0:.0f}"
    if len(faces) > 1:
        log.warning("%s: %d faces found; animating the largest, %s", name, len(faces), where)
    if side * MAX_UPSCALE < size:
        raise InputError(
            f"{name}: {where} gives a {side:.0f} px head crop, too small for the model's {size} px input "
            f"(more than {MAX_UPSCALE:g}× upscaling); expected a face of at least {size / MAX_UPSCALE / scale:.0f} px"
        )
    if side < size:
        log.warning("%s: %s gives a %.0f px head crop, smaller than the model's %d px input: upscaled %.1f×, "
                    "the result will be blurry", name, where, side, size, size / side)
    return face


def load_portrait(image: str | os.PathLike | np.ndarray | Any) -> np.ndarray:
    """Read a portrait as ``uint8 (H, W, 3)`` RGB.

    Args:
        image: a path (any format OpenCV reads), a ``uint8 (H, W, 3)`` RGB array, or a PIL image.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: unreadable / not an image, or an array of the wrong shape or dtype.
    """
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"portrait image {str(path)!r}: no such file")
        data = np.fromfile(path, dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            raise ValueError(f"portrait image {str(path)!r}: cannot decode it as an image (expected PNG/JPEG/...)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if hasattr(image, "convert") and not isinstance(image, np.ndarray):  # PIL
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"portrait image: expected uint8 (H, W, 3) RGB, got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


def crop_portrait(image: np.ndarray, size: int, scale: float = 1.8, detector=None, name: str = "portrait") -> PortraitCrop:
    """Square face crop of a portrait (:func:`flap.tracking.faces.head_box`, the training crop, paper Sec. 5.1).

    Args:
        image: ``uint8 (H, W, 3)`` RGB.
        size: crop side in pixels (the VAE's ``sample_size``).
        scale: crop side / face-box side (as the training data).
        detector: ``frame -> (x0, y0, w, h) | None``; default MediaPipe face detection, full
            range model first, then the short-range one (close-ups).
        name: how errors call the image (e.g. its path).

    Raises:
        NoFaceError: no face found.
        flap.errors.InputError: image or face too small (:func:`check_portrait_image`,
            :func:`choose_face`, which also warns about several faces or a face smaller than ``size``).
    """
    check_portrait_image(image, name)
    faces = [detector(image)] if detector is not None else detect_faces(image)
    face = choose_face([f for f in faces if f is not None], size, scale, name)  # warns: several / small faces
    if face is None:
        raise NoFaceError(
            f"{name}: no face found (MediaPipe face detection); expected a portrait with one visible, "
            "roughly frontal face"
        )
    box = head_box(face, scale=scale)
    crop = crop_frames(image[None], np.asarray([box]), size)[0]
    return PortraitCrop(image=image, crop=crop, box=tuple(float(v) for v in box))


def paste_back(crop_frames: np.ndarray, portrait: PortraitCrop, feather: float = 0.1) -> np.ndarray:
    """Paste generated crops into the original portrait (inverse of :func:`crop_portrait`).

    Args:
        crop_frames: ``uint8 (T, S, S, 3)`` generated crops.
        portrait: the crop they were generated from.
        feather: width of the soft blending border, as a fraction of the crop side.

    Returns:
        ``uint8 (T, H, W, 3)`` frames of the original size.
    """
    h, w = portrait.image.shape[:2]
    cx, cy, side = portrait.box
    s = crop_frames.shape[1]
    k = side / s  # original px per crop px
    m = np.array([[k, 0, cx - side / 2], [0, k, cy - side / 2]], dtype=np.float64)
    ramp = np.clip(np.minimum(np.arange(s) + 0.5, s - np.arange(s) - 0.5) / max(feather * s, 1e-6), 0, 1)
    mask = np.minimum.outer(ramp, ramp).astype(np.float32)
    alpha = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)[..., None]
    base = portrait.image.astype(np.float32)
    out = np.empty((len(crop_frames), h, w, 3), dtype=np.uint8)
    for i, frame in enumerate(crop_frames):
        warped = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[i] = np.clip(alpha * warped + (1 - alpha) * base + 0.5, 0, 255).astype(np.uint8)
    return out
