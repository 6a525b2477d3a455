"""The web studio's handlers (:mod:`flap.app.handlers`, :mod:`flap.app.motion`) as plain functions,
no browser: table ↔ pose script, row errors, previews and generation on a tiny random checkpoint
with the bundled demo portrait and speech, outputs only inside the output folder."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from flap.app.__main__ import parse_args
from flap.app.handlers import MotionSettings, SamplingSettings, Studio, StudioInputs, find_checkpoints
from flap.app.motion import has_keyframes, jaw_degrees, script_from_table, script_yaml, table_from_script
from flap.control import PoseScriptError, load_pose_script
from flap.flame.coeffs import SLICES, HeadCoeffs
from flap.testing import tiny_random_pipeline
from flap.tracking import NoFaceError

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = ROOT / "assets" / "demo" / "portrait.png"
SPEECH = ROOT / "assets" / "demo" / "speech.wav"  # 4.0 s


@pytest.fixture(scope="module")
def checkpoint_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpts")
    tiny_random_pipeline(seed=0, image_size=64).save_pretrained(root / "tiny")
    (root / "not_a_pipeline").mkdir()
    return root


@pytest.fixture()
def studio(checkpoint_root, tmp_path) -> Studio:
    return Studio(tmp_path / "out", checkpoint_roots=[checkpoint_root], device="cpu")


def inputs(studio: Studio, **kw) -> StudioInputs:
    return StudioInputs(**{"portrait": str(PORTRAIT), "speech": str(SPEECH), "checkpoint": studio.checkpoints()[0],
                           **kw})


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------------------ motion table
@pytest.mark.parametrize("name", ["nod", "look_around", "fixed_front", "turn_left"])
def test_bundled_script_table_round_trip(name, tmp_path):
    rows, mode, repeat = table_from_script(name)
    original = load_pose_script(name)
    # the table as the page sends it: every cell a string
    from_table = script_from_table([[str(c) for c in row] for row in rows], mode, repeat)
    assert (from_table.keyframes, from_table.mode, from_table.repeat) == (original.keyframes, original.mode,
                                                                         original.repeat)
    path = tmp_path / "pose.yaml"
    path.write_text(script_yaml(from_table))
    reloaded = load_pose_script(path)
    assert (reloaded.keyframes, reloaded.mode, reloaded.repeat) == (original.keyframes, original.mode, original.repeat)


def test_table_blank_cells_and_rows():
    script = script_from_table([["0", "", None, "", ""], ["", "", "", "", ""], [1.5, "10°", "-20", "5", "linear"]],
                               "replace")
    assert [k.angles for k in script.keyframes] == [(0.0, 0.0, 0.0), (10.0, -20.0, 5.0)]
    assert [k.easing for k in script.keyframes] == ["ease-in-out", "linear"]
    assert not has_keyframes([]) and not has_keyframes([["", None, "", "", ""]]) and has_keyframes([["0"]])


@pytest.mark.parametrize("rows, mode, message", [
    ([["0", "0"], ["0.32", "400"]], "overlay", "pose table row 2: key 'pitch' = 400 is outside [-180, 180] degrees"),
    ([["0", "abc"]], "overlay", "pose table row 1: pitch must be a number, got 'abc'"),
    ([["0.5", "0"], ["", "", "", "", ""], ["0.2", "3"]], "overlay", "pose table row 3 t = 0.2 is not after row 1 t"),
    ([["0", "1"], ["1", "2"]], "fixed", "'fixed' (one constant pose) but 'keyframes' has 2"),
    ([["", "10"]], "overlay", "pose table row 1: t (seconds) is empty"),
    ([["0", "0", "0", "0", "bounce"]], "overlay", "pose table row 1: easing must be one of"),
    ([["0"]], "sideways", "pose table: mode must be one of replace, overlay, fixed"),
    ([], "overlay", "pose table: no keyframes"),
])
def test_table_errors_name_the_row(rows, mode, message):
    with pytest.raises(PoseScriptError) as info:
        script_from_table(rows, mode)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------ studio
def test_checkpoints_are_local_pipeline_folders(studio, checkpoint_root):
    assert studio.checkpoints() == [str(checkpoint_root / "tiny")]
    assert find_checkpoints([checkpoint_root / "tiny"]) == [str(checkpoint_root / "tiny")]
    with pytest.raises(ValueError, match="not a local pipeline folder"):
        studio.pipeline(str(checkpoint_root / "not_a_pipeline"))
    with pytest.raises(ValueError, match="none chosen"):
        studio.pipeline(None)


def test_default_checkpoint_is_the_demo_model_when_offered(studio, tmp_path):
    assert studio.default_checkpoint() == studio.checkpoints()[0]  # no demo model among the choices
    project = Studio(tmp_path / "out2", checkpoint_roots=[ROOT / "checkpoints"], device="cpu")
    assert project.checkpoints()[0] != project.default_checkpoint()  # alphabetical order would pick another
    demo = Path(OmegaConf.load(ROOT / "flap" / "conf" / "generate.yaml").checkpoint)
    assert Path(project.default_checkpoint()).resolve() == (ROOT / demo).resolve()  # make demo's model
    assert Studio(tmp_path / "out3", checkpoint_roots=[tmp_path / "none"]).default_checkpoint() is None


def test_preview_follows_the_table_and_controls(studio):
    rows, _, repeat = table_from_script("nod")  # keyframe t = 0.32 s -> frame 8 at 25 fps, pitch 12 degrees
    motion = MotionSettings(rows=rows, mode="replace", repeat=repeat, blinks_per_minute=0, jaw_scale=0.0, seconds=1.0)
    result = studio.preview(inputs(studio), motion)
    out = Path(studio.output_dir)
    assert {result.video, result.plot, result.script} <= files_under(out)
    assert result.coeffs.num_frames == 25
    pyr = result.coeffs.pose_degrees()
    assert pyr[8].tolist() == pytest.approx([12.0, 0.0, 0.0], abs=1e-3)  # replace: exactly the keyframe
    assert pyr[16].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-3)  # t = 0.64 s: back to 0
    assert torch.all(result.coeffs.jaw == 0) and torch.all(result.coeffs.eyelids == 0)  # jaw x0, no blinks
    with av.open(str(result.video)) as c:
        v = c.streams.video[0]
        assert sum(1 for _ in c.decode(video=0)) == 25 and (v.height, v.width) == (192, 192)
        assert len(c.streams.audio) == 1  # the speech is muxed into the preview
    assert load_pose_script(result.script).keyframes == load_pose_script("nod").keyframes
    assert result.plot.stat().st_size > 1000 and result.plot.read_bytes()[:4] == b"\x89PNG"


def test_preview_without_speech_spans_the_keyframes(studio):
    motion = MotionSettings(rows=[["0", "0", "0", "0", "linear"], ["1.0", "0", "30"]], mode="overlay")
    result = studio.preview(StudioInputs(), motion)  # no speech, no checkpoint needed
    assert result.coeffs.num_frames == 26  # up to the first frame at or after the last keyframe
    assert result.coeffs.pose_degrees()[25, 1].item() == pytest.approx(30.0, abs=1e-3)
    assert result.coeffs.pose_degrees()[5, 1].item() == pytest.approx(6.0, abs=1e-3)  # linear from t = 0: 0.2 s of 1 s


def test_motion_seed_picks_the_sampled_head_motion_and_blinks_the_preview_shows(studio):
    ins = inputs(studio)
    pipe = studio.pipeline(ins.checkpoint)  # the studio's own (cached) pipeline
    pipe.audio2flame.register_to_config(head_motion={"std_deg": [2.0, 4.0, 2.0], "smooth_frames": [4.0, 5.0, 5.5]})
    a, b, other = (studio.motion_coeffs(ins, MotionSettings(blinks_per_minute=60, seconds=2.0, seed=s))[0]
                   for s in (0, 0, 1))
    assert torch.equal(a.data, b.data)
    assert not torch.equal(a.global_rot, other.global_rot)  # another sampled head motion
    assert not torch.equal(a.eyelids, other.eyelids)  # another blink timing
    expected = pipe.coefficients(studio._speech(ins, 2.0), fps=25.0, num_frames=50, seed=1)
    assert torch.equal(other.global_rot, expected.global_rot)  # exactly Audio2Flame's sample for seed 1


def test_expression_from_another_coefficient_file(studio, tmp_path):
    other = HeadCoeffs.neutral(50)
    other.data[:, SLICES["jaw"]] = torch.tensor([0.2, 0.0, 0.0])  # 0.2 rad jaw opening
    path = other.save(tmp_path / "other.coeffs.npz")
    motion = MotionSettings(expression_video=str(path), jaw_scale=0.5, blinks_per_minute=None, seconds=1.0)
    final, speech, script = studio.motion_coeffs(inputs(studio), motion)
    assert script is None and speech.shape == (16000,)
    assert jaw_degrees(final) == pytest.approx(np.full(25, np.degrees(0.1)), abs=1e-4)


def test_generate_writes_video_coeffs_and_script_inside_the_output_folder(studio, tmp_path):
    rows, _, repeat = table_from_script("nod")
    before = PORTRAIT.read_bytes(), SPEECH.read_bytes()
    calls = []
    result = studio.generate(inputs(studio), MotionSettings(rows=rows, mode="replace", repeat=repeat, seconds=1.0),
                             SamplingSettings(num_inference_steps=2, guidance_scale=1.0, strength=1.0, seed=3,
                                              paste=False),
                             progress=lambda value, desc: calls.append((value, desc)))
    assert {result.video, result.coeffs, result.script} <= files_under(Path(studio.output_dir))
    assert (PORTRAIT.read_bytes(), SPEECH.read_bytes()) == before
    assert result.num_frames == 25 and result.fps == 25.0
    with av.open(str(result.video)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.height, v.width) == (64, 64)  # the tiny pipeline's crop, not pasted
        assert float(v.duration * v.time_base) == pytest.approx(1.0, abs=1 / 25)
        assert float(a.duration * a.time_base) == pytest.approx(1.0, abs=1 / 25)
    coeffs = HeadCoeffs.load(result.coeffs)
    assert coeffs.pose_degrees()[8, 0].item() == pytest.approx(12.0, abs=1e-3)
    assert load_pose_script(result.script).mode == "replace"
    assert [c[1] for c in calls] == ["motion", "portrait", "writing video"]


@pytest.mark.parametrize("change, error, message", [
    ({"portrait": str(SPEECH)}, ValueError, "cannot decode it as an image"),
    ({"portrait": None}, ValueError, "portrait: none given"),
    ({"portrait": "/nonexistent/me.png"}, FileNotFoundError, "portrait '/nonexistent/me.png': no such file"),
    ({"speech": None}, ValueError, "speech: none given"),
    ({"speech": str(PORTRAIT)}, ValueError, "portrait.png"),
    ({"checkpoint": "/elsewhere/model"}, ValueError, "not a local pipeline folder"),
])
def test_generate_errors_are_one_line_and_leave_nothing(studio, change, error, message):
    with pytest.raises(error) as info:
        studio.generate(inputs(studio, **change), MotionSettings(seconds=0.4), SamplingSettings(num_inference_steps=1))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (Path(studio.output_dir) / "runs").exists() or not any((Path(studio.output_dir) / "runs").iterdir())


def test_generate_reports_a_portrait_without_a_face(studio, tmp_path):
    import cv2

    flat = tmp_path / "wall.png"
    cv2.imwrite(str(flat), np.full((96, 96, 3), 128, np.uint8))
    with pytest.raises(NoFaceError, match="no face found"):
        studio.generate(inputs(studio, portrait=str(flat)), MotionSettings(seconds=0.4),
                        SamplingSettings(num_inference_steps=1))


@pytest.mark.parametrize("sampling, message", [
    (SamplingSettings(strength=0.0), "strength: expected a number in (0, 1]"),
    (SamplingSettings(num_inference_steps=0), "steps: expected a number >= 1"),
    (SamplingSettings(guidance_scale=float("nan")), "guidance: expected a number >= 0"),
])
def test_generate_rejects_bad_sampling_settings(studio, sampling, message):
    with pytest.raises(ValueError) as info:
        studio.generate(inputs(studio), MotionSettings(), sampling)
    assert message in str(info.value)


def test_command_line_defaults_and_share_flag():
    args = parse_args([])
    assert (args.host, args.port, args.share, args.output_dir) == ("127.0.0.1", 7860, False, "outputs/app")
    assert parse_args(["--share", "false"]).share is False and parse_args(["--share", "true"]).share is True
    with pytest.raises(SystemExit):
        parse_args(["--share", "maybe"])


# ------------------------------------------------------------------------------------------ real videos
@pytest.mark.slow
def test_video_driven_preview_and_expression_from_another_video(studio, shared_data):
    """Tracked motion + the clip's own audio (video-driven), and expression copied from a second clip."""
    from flap.control import fit_length
    from flap.control.sources import load_coeffs

    driving = shared_data / "video" / "motion" / "pcavs_pose_00067.mp4"  # 25 fps, with audio
    talker = shared_data / "video" / "motion" / "pcavs_audio_00086.mp4"
    motion = MotionSettings(seconds=1.0, blinks_per_minute=None, jaw_scale=2.0, expression_video=str(talker))
    final, speech, _ = studio.motion_coeffs(StudioInputs(driving_video=str(driving)), motion)
    tracked = fit_length(load_coeffs(driving, max_frames=26), 25, 25.0)
    expression = fit_length(load_coeffs(talker, max_frames=26), 25, 25.0)
    assert final.num_frames == 25 and speech.shape == (16000,) and np.abs(speech).max() > 0.01
    assert torch.allclose(final.global_rot, tracked.global_rot, atol=1e-5)  # head motion of the driving clip
    assert torch.allclose(final.jaw, 2.0 * expression.jaw, atol=1e-5)  # jaw of the other clip, x2
    assert torch.allclose(final.expression, expression.expression, atol=1e-5)
    preview = studio.preview(StudioInputs(driving_video=str(driving)), MotionSettings(seconds=1.0))
    with av.open(str(preview.video)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 25 and len(c.streams.audio) == 1


# ------------------------------------------------------------------------------------------ page wiring
def test_page_runs_one_generation_at_a_time_and_previews_the_last_edit(studio, monkeypatch, tmp_path):
    pytest.importorskip("gradio")
    for name in ("GRADIO_TEMP_DIR", "GRADIO_ANALYTICS_ENABLED", "MPLCONFIGDIR", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(name, "")  # restored after the test; configure_environment overwrites them
    from flap.app import configure_environment

    out = configure_environment(tmp_path / "app")
    assert os.environ["GRADIO_TEMP_DIR"] == str(out / "gradio") and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    from flap.app.ui import build_app

    app = build_app(studio)
    fns = {fn.name: fn for fn in app.fns.values()}
    assert (fns["generate"].concurrency_limit, fns["generate"].concurrency_id) == (1, "generate")
    assert (fns["preview"].concurrency_limit, fns["preview"].trigger_mode) == (1, "always_last")
    assert app.analytics_enabled is False


def test_sampling_defaults_are_the_generate_commands():
    """The page's "Advanced" defaults are ``flap.generate``'s (``flap/conf/generate.yaml``)."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "flap" / "conf" / "generate.yaml")
    assert asdict(SamplingSettings()) == {k: cfg[k] for k in asdict(SamplingSettings())}
