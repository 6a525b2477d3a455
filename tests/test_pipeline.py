"""FLAPPipeline with tiny random components: windows, blending, CFG, reference reuse, I/O, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flap.audio.io import fit_audio
from flap.control import apply_pose
from flap.flame.coeffs import HeadCoeffs
from flap.pipeline import FLAPPipeline
from flap.portrait import PortraitCrop, crop_portrait, load_portrait, paste_back
from flap.testing import tiny_random_pipeline
from flap.tracking import NoFaceError
from flap.windows import temporal_windows, window_weights

SIZE = 64  # face-crop side of the test pipelines (8 x 8 latents): fast on a CPU


@pytest.fixture(scope="module")
def pipe() -> FLAPPipeline:
    return tiny_random_pipeline(seed=0, image_size=SIZE)


@pytest.fixture(scope="module")
def portrait(shared_data) -> PortraitCrop:
    return crop_portrait(load_portrait(shared_data / "portraits" / "grid_bbaf2n_frame.png"), SIZE)


# ------------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("t,window,overlap", [(1, 16, 4), (16, 16, 4), (17, 16, 4), (100, 16, 4), (40, 8, 0), (33, 9, 8)])
def test_windows_cover_every_frame_with_overlap(t, window, overlap):
    wins = temporal_windows(t, window, overlap)
    covered = np.zeros(t, int)
    for s, e in wins:
        assert 0 <= s < e <= t and e - s == min(window, t)
        covered[s:e] += 1
    assert covered.min() >= 1
    assert wins[0][0] == 0 and wins[-1][1] == t
    for (s0, e0), (s1, _) in zip(wins, wins[1:]):
        assert e0 - s1 >= overlap  # consecutive windows share at least `overlap` frames
        assert s1 > s0


def test_windows_reject_bad_arguments():
    with pytest.raises(ValueError, match="overlap"):
        temporal_windows(10, 4, 4)
    with pytest.raises(ValueError):
        temporal_windows(10, 0, 0)


def test_window_weights_cross_fade():
    w = window_weights(16, 4, first=False, last=False)
    assert torch.allclose(w[:4], torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=torch.float64))
    assert torch.allclose(w[-4:], torch.tensor([0.8, 0.6, 0.4, 0.2], dtype=torch.float64))
    assert (w[4:12] == 1).all()
    # the falling ramp of one window and the rising ramp of the next sum to 1 across the overlap
    assert torch.allclose(w[-4:] + w[:4], torch.ones(4, dtype=torch.float64))
    assert (window_weights(16, 4, first=True, last=True) == 1).all()


# ------------------------------------------------------------------------------------- denoising
def _reference(pipe, portrait):
    return pipe.encode_reference(portrait.crop)


def test_windowed_denoising_equals_whole_video_when_frames_are_independent(pipe, portrait):
    """With temporal layers off every frame is denoised independently, so blending overlapping
    windows must give exactly the single-window result: no seams from the windowing itself."""
    coeffs = HeadCoeffs.neutral(20)
    coeffs.set_pose_degrees(np.stack([np.zeros(20), np.linspace(-20, 20, 20), np.zeros(20)], 1))
    ref = _reference(pipe, portrait)
    pipe.denoising_net.set_temporal_enabled(False)
    try:
        whole = pipe.denoise(ref, coeffs, 2, 2.0, window=20, overlap=0,
                             generator=torch.Generator().manual_seed(3), progress=False)
        windowed = pipe.denoise(ref, coeffs, 2, 2.0, window=8, overlap=3,
                                generator=torch.Generator().manual_seed(3), progress=False)
    finally:
        pipe.denoising_net.set_temporal_enabled(True)
    assert whole.shape == (1, 4, 20, SIZE // 8, SIZE // 8)
    torch.testing.assert_close(windowed, whole, rtol=1e-4, atol=1e-4)


def test_guidance_scale_one_equals_conditional_branch(pipe, portrait):
    ref = _reference(pipe, portrait)
    cond = HeadCoeffs.neutral(4).data
    x = torch.randn(1, 4, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(0))
    pipe.scheduler.set_timesteps(5)
    t = pipe.scheduler.timesteps[0]
    with torch.no_grad():
        plain = pipe._predict_window(x, t, ref, cond, (1.0, None), cfg=False)
        batched = pipe._predict_window(x, t, ref, cond, (1.0, None), cfg=True)
        guided = pipe._predict_window(x, t, ref, cond, (3.0, None), cfg=True)
    torch.testing.assert_close(batched, plain, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(guided, plain)  # the null tokens differ from the condition tokens


def test_expression_guidance_is_compositional_cfg(portrait):
    """eps = eps_u + s (eps_m - eps_u) + s_e (eps_c - eps_m), each branch run on its own here."""
    pipe = tiny_random_pipeline(seed=1, image_size=SIZE)
    with torch.no_grad():  # the expression layers start as no-ops: give them weights so c_exp matters
        for name, param in pipe.denoising_net.named_parameters():
            if "expression_attn.to_out" in name:
                param.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    ref = _reference(pipe, portrait)
    coeffs = HeadCoeffs.neutral(4)
    coeffs.jaw[:, 0] = torch.linspace(0.0, 0.3, 4)
    cond = coeffs.data
    x = torch.randn(1, 4, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(0))
    pipe.scheduler.set_timesteps(5)
    t = pipe.scheduler.timesteps[1]
    net = pipe.denoising_net
    xs = pipe.scheduler.scale_model_input(x, t)

    def branch(motion_null, exp_null):
        return net(xs, t, reference=ref, c_motion=cond[None, :, :3], c_exp=cond[None, :, 3:],
                   head_motion_null_mask=torch.tensor([motion_null]),
                   expression_null_mask=torch.tensor([exp_null])).sample.float()

    with torch.no_grad():
        eps_c, eps_m, eps_u = branch(False, False), branch(False, True), branch(True, True)
        three = pipe._predict_window(x, t, ref, cond, (2.0, 5.0), cfg=True)
        two = pipe._predict_window(x, t, ref, cond, (2.0, None), cfg=True)
    assert not torch.allclose(eps_c, eps_m, atol=1e-4)  # c_exp matters in this random net: the test can fail
    torch.testing.assert_close(three, eps_u + 2.0 * (eps_m - eps_u) + 5.0 * (eps_c - eps_m), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(two, eps_u + 2.0 * (eps_c - eps_u), rtol=1e-4, atol=1e-5)
    # s_e = s is plain CFG, whichever way it is asked for
    a = pipe.denoise(ref, coeffs, 2, 2.0, generator=torch.Generator().manual_seed(1), progress=False,
                     expression_guidance_scale=2.0)
    b = pipe.denoise(ref, coeffs, 2, 2.0, generator=torch.Generator().manual_seed(1), progress=False)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="expression_guidance_scale"):
        pipe.denoise(ref, coeffs, 2, 2.0, progress=False, expression_guidance_scale=float("nan"))


def test_reference_net_runs_once_per_video(pipe, portrait):
    calls = []
    handle = pipe.reference_net.register_forward_hook(lambda *a: calls.append(1))
    try:
        frames = list(pipe.iter_frames(portrait, HeadCoeffs.neutral(30), num_inference_steps=2,
                                       window=12, overlap=4, progress=False))
    finally:
        handle.remove()
    assert len(calls) == 1
    assert len(frames) == 30 and frames[0].shape == (SIZE, SIZE, 3) and frames[0].dtype == np.uint8


def test_same_seed_same_video_and_save_load_round_trip(pipe, portrait, tmp_path):
    coeffs = HeadCoeffs.neutral(6)
    kwargs = dict(num_inference_steps=2, window=4, overlap=1, progress=False)
    a = np.stack(list(pipe.iter_frames(portrait, coeffs, generator=torch.Generator().manual_seed(1), **kwargs)))
    pipe.save_pretrained(tmp_path / "ckpt")
    loaded = FLAPPipeline.from_pretrained(tmp_path / "ckpt")
    b = np.stack(list(loaded.iter_frames(portrait, coeffs, generator=torch.Generator().manual_seed(1), **kwargs)))
    np.testing.assert_array_equal(a, b)
    assert loaded.audio2flame is not None and loaded.image_size == SIZE


def test_from_pretrained_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        FLAPPipeline.from_pretrained(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------- python API
def test_python_api_per_frame_yaw_override(pipe, shared_data):
    """Generate from given coefficients whose yaw is overridden per frame (Python API)."""
    t = 12
    yaw = np.linspace(-30, 30, t)
    coeffs = apply_pose(HeadCoeffs.neutral(t), yaw=yaw)
    out = pipe(shared_data / "portraits" / "grid_lbax4n_frame.png", coeffs=coeffs, num_inference_steps=1,
               window=8, overlap=2, progress=False)
    assert out.frames.shape == (t, SIZE, SIZE, 3)
    assert out.fps == 25.0 and out.audio is None
    np.testing.assert_allclose(out.coeffs.pose_degrees()[:, 1].numpy(), yaw, atol=1e-3)


def test_python_api_audio_controls_and_paste_back(pipe, shared_data):
    audio = shared_data / "audio" / "ljspeech_LJ002-0020.wav"  # 1.5 s
    image = shared_data / "portraits" / "grid_sbia1a_frame.png"
    out = pipe(image, audio=audio, controls={"pose": "turn_left", "blinks_per_minute": 30},
               num_inference_steps=1, guidance_scale=1.0, paste=True, progress=False)
    import soundfile

    seconds = soundfile.info(str(audio)).duration
    t = round(seconds * 25)
    assert out.frames.shape == (t, 288, 360, 3)  # pasted into the original 360 x 288 portrait
    assert out.audio is not None and abs(len(out.audio) / 16000 - t / 25) < 1e-3
    yaw = out.coeffs.pose_degrees()[:, 1].numpy()
    assert yaw[-1] - yaw[0] > 5  # turn_left rotates the head about y


# ------------------------------------------------------------------------------------- portrait
def test_load_portrait_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_portrait(tmp_path / "missing.png")
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not_an_image.png"):
        load_portrait(bad)
    with pytest.raises(ValueError, match="uint8"):
        load_portrait(np.zeros((4, 4), np.float32))


def test_no_face_is_a_clear_error():
    blank = np.full((200, 200, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="no face"):
        crop_portrait(blank, SIZE, name="blank.png")


def test_paste_back_keeps_the_background_and_places_the_crop():
    image = np.zeros((100, 120, 3), np.uint8)
    portrait = PortraitCrop(image=image, crop=np.zeros((32, 32, 3), np.uint8), box=(60.0, 50.0, 40.0))
    crops = np.full((2, 32, 32, 3), 200, np.uint8)
    out = paste_back(crops, portrait, feather=0.1)
    assert out.shape == (2, 100, 120, 3)
    assert (out[:, :25] == 0).all() and (out[:, :, :35] == 0).all()  # outside the box: the original
    assert (out[:, 40:60, 50:70] == 200).all()  # inside (past the feather): the generated crop


def test_fit_audio_trims_and_pads():
    a = np.ones(1000, np.float32)
    assert len(fit_audio(a, 0.05)) == 800
    padded = fit_audio(a, 0.1)
    assert len(padded) == 1600 and padded[1000:].sum() == 0
