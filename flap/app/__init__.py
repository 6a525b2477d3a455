"""flap.app: the FLAP web studio (``python -m flap.app``, ``make app``).

One Gradio page: **Inputs** (portrait, speech or microphone, or a driving video; a local
checkpoint), **Motion** (a bundled pose script or an editable keyframe table with mode replace /
overlay / fixed; blink rate; jaw scale; expression from the speech or another video), **Preview**
(FLAME mesh video and a pitch / yaw / roll / jaw plot of the final coefficients, updated on every
motion edit, no diffusion) and **Generate** (progress over windows × steps, the video, downloads of
the mp4, the coefficients and the pose script).

* :mod:`flap.app.handlers`: :class:`Studio`, the plain-Python handlers (no Gradio).
* :mod:`flap.app.motion`: keyframe table ↔ pose script, motion plot.
* :mod:`flap.app.ui`: the page (needs the ``app`` extra: ``pip install -e ".[app]"``).

Offline by design: Gradio's analytics and version check are off, its front end ships in the wheel
and the page loads no font or script from the network; uploads, Gradio's cache and every output go
to the app's output folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from flap.app.handlers import (
    GenerationResult,
    MotionSettings,
    PreviewResult,
    SamplingSettings,
    Studio,
    StudioInputs,
)

__all__ = [
    "GenerationResult",
    "MotionSettings",
    "PreviewResult",
    "SamplingSettings",
    "Studio",
    "StudioInputs",
    "configure_environment",
    "launch",
]


def configure_environment(output_dir: str | os.PathLike) -> Path:
    """Point Gradio's cache/upload folder into ``output_dir/gradio`` and switch its analytics off.

    Must run before ``gradio`` is first imported (it reads these variables at import).

    Returns:
        The resolved output folder (created).
    """
    out = Path(output_dir).expanduser().resolve()
    (out / "gradio").mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(out / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("MPLCONFIGDIR", str(out / "matplotlib"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return out


def launch(output_dir: str | os.PathLike = "outputs/app", host: str = "127.0.0.1", port: int | None = None,
           share: bool = False, checkpoint_roots=(), device: str = "auto", block: bool = True):
    """Start the studio server (one generation at a time, Gradio's queue).

    Args:
        output_dir: the only folder the app writes to.
        host: interface to listen on (``127.0.0.1`` = this machine only; ``0.0.0.0`` = the network).
        port: TCP port (``None`` = Gradio's default, 7860 or the next free one).
        share: ask Gradio for a public tunnel (needs the internet; off by default).
        checkpoint_roots: folders searched for pipeline folders (default ``checkpoints/``).
        device: torch device (``auto``, ``cpu``, ``cuda``...).
        block: serve until interrupted; ``False`` returns ``(app, local_url)`` with the server running.
    """
    out = configure_environment(output_dir)
    from flap.app.ui import CSS, build_app

    studio = Studio(out, checkpoint_roots=list(checkpoint_roots), device=device)
    app = build_app(studio)
    app.queue(default_concurrency_limit=1, max_size=16)
    _, local_url, _ = app.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=not block, show_error=True,
        allowed_paths=[str(out)], ssr_mode=False, footer_links=[], css=CSS, quiet=False,
    )
    return app, local_url
