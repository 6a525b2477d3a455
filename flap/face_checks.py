"""Portrait sanity checks: image size, face size against the model input, several faces.

Used by :func:`flap.pipeline.crop_portrait`. A face far smaller than the model's input can only
give a blurred, upscaled result, so it is refused; a face somewhat smaller is used with a warning;
several faces get a warning naming the face used (the largest).
"""

from __future__ import annotations

import logging

import numpy as np

from flap.errors import InputError

__all__ = ["MIN_IMAGE_SIDE", "MAX_UPSCALE", "check_portrait_image", "detect_faces", "choose_face"]

log = logging.getLogger("flap.portrait")

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


def detect_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """MediaPipe face boxes ``(x0, y0, w, h)`` px, largest first: full-range model, else short-range."""
    from flap.data.crop import MediaPipeFaceDetector

    for model_selection in (1, 0):
        detector = MediaPipeFaceDetector(model_selection=model_selection)
        try:
            faces = detector.detect_all(image)
        finally:
            detector.close()
        if faces:
            return faces
    return []


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
