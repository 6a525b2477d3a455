"""The web studio page (Gradio Blocks): Inputs, Motion, Preview, Generate.

Layout and wiring only; every action calls a method of :class:`flap.app.handlers.Studio` through a
thin wrapper that turns component values into the handler's dataclasses and any input error into
a one-line message in the status box (the app keeps serving). Import this module only after
:func:`flap.app.configure_environment` (Gradio reads its environment at import).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no telemetry, no version check: nothing leaves the machine

import gradio as gr  # noqa: E402

from flap.app.handlers import (  # noqa: E402
    PROJECT_ROOT,
    MotionSettings,
    SamplingSettings,
    Studio,
    StudioInputs,
)
from flap.app.motion import TABLE_COLUMNS, table_from_script  # noqa: E402
from flap.control import POSE_MODES, bundled_pose_scripts  # noqa: E402

__all__ = ["build_app", "USER_ERRORS"]

log = logging.getLogger(__name__)

#: Errors that are the user's input (shown as a message); anything else is logged with its traceback too.
USER_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError)
CUSTOM = "(custom table)"
FROM_INPUT = "speech / driving video"
FROM_VIDEO = "another video"
DEMO = PROJECT_ROOT / "assets" / "demo"

CSS = """
#flap-status strong, #flap-preview-info strong { color: #b91c1c; }
"""


def _untouched_upload(image: gr.Image) -> gr.Image:
    """Make ``image`` hand the uploaded file over untouched (no decoding, no re-encoding).

    :func:`flap.pipeline.load_portrait` then reads it, so a file that is not an image gets the
    command line's one-line message instead of Gradio's preprocessing traceback. (An instance
    attribute, not a subclass: Gradio writes a ``.pyi`` stub beside every component subclass.)
    """
    decode = image.preprocess

    def preprocess(payload):
        if payload is None or payload.path is None or (payload.url or "").startswith("data:"):
            return decode(payload)
        return str(payload.path)

    image.preprocess = preprocess
    return image


def _error(exc: BaseException) -> str:
    if not isinstance(exc, USER_ERRORS):
        log.exception("flap.app: unexpected error")
    return f"**Error:** {exc}"


def _inputs(portrait, speech, driving, checkpoint) -> StudioInputs:
    return StudioInputs(portrait=portrait or None, speech=speech or None, driving_video=driving or None,
                        checkpoint=checkpoint or None)


def _motion(rows, mode, repeat, blinks, jaw, expression_source, expression_video, seconds, seed) -> MotionSettings:
    return MotionSettings(rows=rows or [], mode=mode, repeat=bool(repeat), blinks_per_minute=blinks,
                          jaw_scale=jaw, seconds=seconds, seed=seed,
                          expression_video=(expression_video or None) if expression_source == FROM_VIDEO else None)


def build_app(studio: Studio) -> gr.Blocks:
    """The page, wired to ``studio``. Launch with ``.queue(...).launch(...)`` (see :func:`flap.app.launch`)."""
    checkpoints = studio.checkpoints()
    scripts = bundled_pose_scripts()
    with gr.Blocks(title="FLAP studio", analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        gr.Markdown("# FLAP studio\nPortrait + speech → talking head, with the head motion under your control: "
                    "shape the motion, watch it on a FLAME mesh at once, then spend diffusion time.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                gr.Markdown("## 1 · Inputs")
                portrait = gr.Image(label="Portrait (one visible face)", type="filepath", sources=["upload"],
                                    height=220, buttons=["fullscreen"], elem_id="flap-portrait")
                _untouched_upload(portrait)
                speech = gr.Audio(label="Speech (upload or record)", type="filepath",
                                  sources=["upload", "microphone"], buttons=["download"], elem_id="flap-speech")
                with gr.Accordion("Video-driven mode (optional)", open=False):
                    driving = gr.Video(label="Driving video: its tracked motion and its audio (speech is ignored)",
                                       sources=["upload"], elem_id="flap-driving")
                checkpoint = gr.Dropdown(label="Checkpoint (local pipeline folder)",
                                         choices=[(Path(c).name, c) for c in checkpoints],
                                         value=studio.default_checkpoint(), elem_id="flap-checkpoint")
                examples = [[str(DEMO / name), str(DEMO / "speech.wav")]  # make demo's person first
                            for name in ("obama_portrait.png", "portrait.png")
                            if (DEMO / name).is_file() and (DEMO / "speech.wav").is_file()]
                if examples:
                    gr.Examples(examples, [portrait, speech], label="Bundled demo (click to load)")
            with gr.Column(scale=1):
                gr.Markdown("## 2 · Motion")
                pose = gr.Dropdown(label="Pose script (loads the table; then edit it)", choices=[CUSTOM, *scripts],
                                   value=CUSTOM, elem_id="flap-pose")
                table = gr.Dataframe(label="Keyframes: t (s), pitch / yaw / roll (degrees), easing "
                                           "(linear, ease-in-out, hold)",
                                     headers=list(TABLE_COLUMNS), datatype="str", type="array", value=[],
                                     interactive=True, column_count=len(TABLE_COLUMNS), elem_id="flap-table")
                with gr.Row():
                    mode = gr.Radio(list(POSE_MODES), value="overlay", label="Mode", elem_id="flap-mode")
                    repeat = gr.Checkbox(label="Repeat", value=False, elem_id="flap-repeat")
                with gr.Row():
                    blinks = gr.Slider(0, 40, value=12, step=1, label="Blinks per minute", elem_id="flap-blinks")
                    jaw = gr.Slider(0, 2, value=1, step=0.05, label="Jaw scale", elem_id="flap-jaw")
                with gr.Row():
                    expression_source = gr.Radio([FROM_INPUT, FROM_VIDEO], value=FROM_INPUT,
                                                 label="Expression from", elem_id="flap-expression-source")
                    seconds = gr.Number(label="Length (s; 0 = whole speech)", value=0, minimum=0,
                                        elem_id="flap-seconds")
                expression_video = gr.Video(label="Expression video (tracked)", sources=["upload"], visible=False,
                                            elem_id="flap-expression-video")
            with gr.Column(scale=1):
                gr.Markdown("## 3 · Preview (FLAME mesh, no diffusion)")
                preview_video = gr.Video(label="Mesh preview", interactive=False, autoplay=False, height=300,
                                         buttons=["download"], elem_id="flap-preview-video")
                preview_plot = gr.Image(label="Pitch / yaw / roll / jaw (degrees)", show_label=False,
                                        interactive=False, type="filepath", buttons=["download", "fullscreen"],
                                        elem_id="flap-preview-plot")
                preview_info = gr.Markdown(elem_id="flap-preview-info")
        gr.Markdown("## 4 · Generate")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                with gr.Accordion("Advanced", open=False):
                    steps = gr.Slider(1, 50, value=SamplingSettings.num_inference_steps, step=1, label="Steps (DDIM)",
                                      elem_id="flap-steps")
                    guidance = gr.Slider(1, 5, value=SamplingSettings.guidance_scale, step=0.1,
                                         label="Guidance (CFG; 1 = off)", elem_id="flap-guidance")
                    strength = gr.Slider(0.05, 1, value=SamplingSettings.strength, step=0.05,
                                         label="Strength (1 = from pure noise)", elem_id="flap-strength")
                    seed = gr.Number(value=SamplingSettings.seed, precision=0, label="Seed", elem_id="flap-seed")
                    paste = gr.Checkbox(value=SamplingSettings.paste, label="Paste the face into the whole portrait",
                                        elem_id="flap-paste")
                run = gr.Button("Generate", variant="primary", elem_id="flap-generate")
                status = gr.Markdown("Load a portrait and speech (or the bundled demo), shape the motion, "
                                     "then Generate.", elem_id="flap-status")
            with gr.Column(scale=1):
                result_video = gr.Video(label="Result", interactive=False, height=360, buttons=["download"],
                                        elem_id="flap-result-video")
            with gr.Column(scale=1):
                downloads = gr.File(label="Downloads: video, coefficients, pose script", file_count="multiple",
                                    interactive=False, elem_id="flap-downloads")

        # ------------------------------------------------------------ events
        def load_script(name):
            if not name or name == CUSTOM:
                return gr.update(), gr.update(), gr.update()
            rows, script_mode, script_repeat = table_from_script(name)
            return [[str(v) for v in row] for row in rows], script_mode, script_repeat

        pose.change(load_script, pose, [table, mode, repeat], queue=False)
        table.input(lambda: CUSTOM, None, pose, queue=False)
        expression_source.change(lambda s: gr.update(visible=s == FROM_VIDEO), expression_source, expression_video,
                                 queue=False)

        motion_inputs = [speech, driving, checkpoint, table, mode, repeat, blinks, jaw, expression_source,
                         expression_video, seconds]

        def preview(speech_v, driving_v, checkpoint_v, *motion_v):
            try:
                result = studio.preview(_inputs(None, speech_v, driving_v, checkpoint_v), _motion(*motion_v))
            except Exception as exc:  # noqa: BLE001 - every error becomes a message; the app keeps serving
                return gr.update(), gr.update(), _error(exc)
            return str(result.video), str(result.plot), f"Preview: {result.summary}"

        # the one Seed also picks the sampled head motion and the blink timing, so it re-renders the preview
        gr.on([c.change for c in (*motion_inputs, seed)], preview, [*motion_inputs, seed],
              [preview_video, preview_plot, preview_info],
              trigger_mode="always_last", concurrency_limit=1, concurrency_id="preview", show_progress="minimal")

        def generate(portrait_v, speech_v, driving_v, checkpoint_v, table_v, mode_v, repeat_v, blinks_v, jaw_v,
                     expression_source_v, expression_video_v, seconds_v, steps_v, guidance_v, strength_v, seed_v,
                     paste_v, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio injects it)
            try:
                result = studio.generate(
                    _inputs(portrait_v, speech_v, driving_v, checkpoint_v),
                    _motion(table_v, mode_v, repeat_v, blinks_v, jaw_v, expression_source_v, expression_video_v,
                            seconds_v, seed_v),
                    SamplingSettings(num_inference_steps=steps_v, guidance_scale=guidance_v, strength=strength_v,
                                     seed=seed_v, paste=paste_v),
                    progress=progress)
            except Exception as exc:  # noqa: BLE001
                return gr.update(), gr.update(), _error(exc)
            files = [str(p) for p in (result.video, result.coeffs, result.script) if p is not None]
            return str(result.video), files, f"Done: {result.summary}"

        run.click(generate, [portrait, *motion_inputs, steps, guidance, strength, seed, paste],
                  [result_video, downloads, status], concurrency_limit=1, concurrency_id="generate")
    return app
