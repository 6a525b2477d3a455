"""Bad input files at the library level: each loader raises FLAP's own error (one line naming the file).

Issue 15: coefficient files (fps a 2-vector, string data, truncated, garbage, 0 frames), pose scripts
(``yaw: 1e9`` read as a string by YAML 1.1), truncated WAV files, checkpoint folders (truncated or
empty weights, non-JSON configs, a ``model_index.json`` that is a list), small / several faces; plus a
hypothesis fuzz test of the pose-script parser, the coefficient loader and the audio loader.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flap.audio.io import load_audio
from flap.control.script import load_pose_script
from flap.errors import FlapError, InputError, InputNotFoundError, UsageError
from flap.flame import HeadCoeffs
from flap.models.checkpoint_files import check_pipeline_folder, check_safetensors_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "checkpoints" / "flap_tiny_demo"


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


# ----------------------------------------------------------------------------- coefficient files
def _valid_coeffs(n: int = 4) -> HeadCoeffs:
    return HeadCoeffs.neutral(n, 25.0)


def write_bad_coeffs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Bad coefficient files, by case name: (path, words the message must contain)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = _valid_coeffs()
    cases = {}
    p = folder / "fps_vector.npz"
    np.savez(p, coeffs=good.numpy(), fps=np.array([25.0, 30.0]))
    cases["fps is a 2-vector"] = (p, "'fps' must be one number")
    p = folder / "string_data.npz"
    np.savez(p, coeffs=np.array([["a"] * 120] * 3), fps=np.array(25.0))
    cases["string data"] = (p, "must hold real numbers")
    p = folder / "zero_frames.npz"
    np.savez(p, coeffs=np.zeros((0, 120), np.float32), fps=np.array(25.0))
    cases["0 frames"] = (p, "0 frames")
    full = good.save(folder / "full.npz").read_bytes()
    p = folder / "truncated.npz"
    p.write_bytes(full[: len(full) // 2])
    cases["truncated npz"] = (p, "not a readable .npz")
    st_full = good.save(folder / "full.safetensors").read_bytes()
    p = folder / "truncated.safetensors"
    p.write_bytes(st_full[: len(st_full) // 2])
    cases["truncated safetensors"] = (p, "not a readable .safetensors")
    p = folder / "garbage.safetensors"
    p.write_bytes(b"this is not a safetensors file at all, just text\n" * 20)
    cases["garbage safetensors"] = (p, "not a readable .safetensors")
    return cases


def test_bad_coefficient_files_raise_input_error_naming_the_file(tmp_path):
    for case, (path, words) in write_bad_coeffs(tmp_path).items():
        with pytest.raises(InputError) as info:
            HeadCoeffs.load(path)
        msg = one_line(info.value)
        assert str(path) in msg and words in msg, (case, msg)
    with pytest.raises(InputNotFoundError, match="nothing.npz"):
        HeadCoeffs.load(tmp_path / "nothing.npz")
    with pytest.raises(InputNotFoundError, match="a folder"):
        HeadCoeffs.load(tmp_path)


def test_good_coefficient_files_still_load(tmp_path):
    good = _valid_coeffs(3)
    for suffix in (".npz", ".safetensors"):
        back = HeadCoeffs.load(good.save(tmp_path / f"c{suffix}"))
        assert back.num_frames == 3 and back.fps == 25.0 and np.array_equal(back.numpy(), good.numpy())


# ----------------------------------------------------------------------------- pose scripts
def test_pose_script_yaml11_exponent_is_read_as_a_number(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("keyframes:\n  - {t: 0, yaw: 1e9}\n")
    with pytest.raises(InputError) as info:
        load_pose_script(p)
    msg = one_line(info.value)
    # YAML 1.2 (and every reader) calls 1e9 a number: the message must say it is out of range, not "not a number"
    assert str(p) in msg and "'yaw' = 1e+09 is outside [-180, 180]" in msg, msg
    p.write_text("keyframes:\n  - {t: 0, yaw: 1e1, pitch: -2.5E+1}\n")
    assert load_pose_script(p).keyframes[0].angles == (-25.0, 10.0, 0.0)
    p.write_text("keyframes:\n  - {t: 0, yaw: ten}\n")
    with pytest.raises(InputError, match=r"'yaw' must be a number, got 'ten' \(str\)"):
        load_pose_script(p)


# ----------------------------------------------------------------------------- audio
def write_truncated_wav(path: Path, seconds: float = 1.0, keep: float = 0.5) -> Path:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(16000 * seconds), np.float32), 16000, format="WAV", subtype="PCM_16")
    data = buf.getvalue()
    path.write_bytes(data[: 44 + int((len(data) - 44) * keep)])
    return path


def test_truncated_wav_is_refused_naming_the_file(tmp_path):
    p = write_truncated_wav(tmp_path / "cut.wav")
    with pytest.raises(InputError) as info:
        load_audio(p)
    msg = one_line(info.value)
    assert str(p) in msg and "truncated WAV" in msg and "declares 32000 bytes" in msg and "16000" in msg, msg
    whole = tmp_path / "whole.wav"
    sf.write(whole, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    assert load_audio(whole).shape == (16000,)


# ----------------------------------------------------------------------------- checkpoint folders
def broken_checkpoint(tmp: Path, case: str) -> tuple[Path, Path]:
    """A copy of the tiny demo checkpoint (components symlinked) with one file broken: (folder, bad file)."""
    root = tmp / case.replace(" ", "_")
    root.mkdir(parents=True)
    index = json.loads((TINY / "model_index.json").read_text())
    for name in index:
        if (TINY / name).is_dir():
            (root / name).symlink_to(TINY / name, target_is_directory=True)
    shutil.copy(TINY / "model_index.json", root / "model_index.json")

    def own(component: str) -> Path:  # a real copy of one component, to break
        (root / component).unlink()
        shutil.copytree(TINY / component, root / component)
        return root / component

    if case == "truncated weights":
        bad = own("vae") / "diffusion_pytorch_model.safetensors"
        bad.write_bytes(bad.read_bytes()[:100_000])
    elif case == "empty weights":
        bad = own("reference_net") / "diffusion_pytorch_model.safetensors"
        bad.write_bytes(b"")
    elif case == "config not JSON":
        bad = own("denoising_net") / "config.json"
        bad.write_text("{not json")
    elif case == "model_index list":
        bad = root / "model_index.json"
        bad.write_text("[1, 2, 3]")
    elif case == "model_index not JSON":
        bad = root / "model_index.json"
        bad.write_text("<html>not json</html>")
    else:
        raise ValueError(case)
    return root, bad


CHECKPOINT_CASES = ("truncated weights", "empty weights", "config not JSON", "model_index list", "model_index not JSON")


@pytest.mark.parametrize("case", CHECKPOINT_CASES)
def test_broken_checkpoint_names_the_file(tmp_path, case):
    root, bad = broken_checkpoint(tmp_path, case)
    with pytest.raises(InputError) as info:
        check_pipeline_folder(root, required=("vae", "reference_net", "denoising_net", "scheduler"),
                              optional=("audio2flame",))
    assert str(bad) in one_line(info.value), info.value


def test_pipeline_from_pretrained_checks_files_first(tmp_path):
    from flap.pipeline import FLAPPipeline

    root, bad = broken_checkpoint(tmp_path, "truncated weights")
    with pytest.raises(InputError, match="truncated weights file"):
        FLAPPipeline.from_pretrained(root)
    check_pipeline_folder(TINY, required=("vae",), optional=("audio2flame",))  # the real one passes
    check_safetensors_file(TINY / "vae" / "diffusion_pytorch_model.safetensors")


# ----------------------------------------------------------------------------- numbers at the API
def test_pipeline_refuses_zero_steps_and_nan_guidance():
    from flap.testing import tiny_random_pipeline

    pipe = tiny_random_pipeline(seed=0, image_size=64)
    reference = None  # never reached: the arguments are checked first
    with pytest.raises(UsageError, match="num_inference_steps=0"):
        pipe.denoise(reference, _valid_coeffs(), num_inference_steps=0)
    with pytest.raises(UsageError, match="guidance_scale=nan"):
        pipe.denoise(reference, _valid_coeffs(), num_inference_steps=1, guidance_scale=float("nan"))


# ----------------------------------------------------------------------------- portraits
@pytest.fixture(scope="module")
def portraits(shared_data):
    from flap.portrait import load_portrait

    return [load_portrait(shared_data / "portraits" / n) for n in ("grid_bbaf2n_frame.png", "grid_lbax4n_frame.png")]


def test_tiny_image_and_tiny_face_are_refused(portraits):
    import cv2

    from flap.portrait import MAX_UPSCALE, MIN_IMAGE_SIDE, crop_portrait

    with pytest.raises(InputError, match=f"image is 10×10 px, expected .* at least {MIN_IMAGE_SIDE}"):
        crop_portrait(np.zeros((10, 10, 3), np.uint8), 128, name="ten.png")
    a = portraits[0]
    small = cv2.resize(a, (a.shape[1] // 8, a.shape[0] // 8), interpolation=cv2.INTER_AREA)
    with pytest.raises(InputError, match=rf"small.png: the \d+×\d+ px face .* {MAX_UPSCALE:g}× upscaling"):
        crop_portrait(small, 128, name="small.png")


def test_several_faces_warn_naming_the_face_used(portraits, caplog):
    from flap.portrait import crop_portrait

    a, b = portraits
    two = np.concatenate([a, b[::2, ::2].repeat(2, 0).repeat(2, 1)[: a.shape[0]]], axis=1)
    half = np.ascontiguousarray(two)
    with caplog.at_level(logging.WARNING, logger="flap.portrait"):
        crop = crop_portrait(half, 128, name="two.png")
    warned = [r.getMessage() for r in caplog.records if "faces found" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("two.png: 2 faces found; animating the largest, the "), warned
    w, _, x0, _ = map(float, re.search(r"the (\d+)×(\d+) px face at x=(\d+), y=(\d+)", warned[0]).groups())
    assert abs(x0 + w / 2 - crop.box[0]) < 1.0  # the face the warning names is the one cropped (box centre x)


# ----------------------------------------------------------------------------- fuzz
_FUZZ = settings(max_examples=int(os.environ.get("FLAP_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                     st.text(max_size=12), st.sampled_from(["1e9", "nan", ".inf", "-0", "ease-in-out", "hold"]))
_keys = st.sampled_from(["keyframes", "mode", "repeat", "easing", "name", "description", "t", "frame",
                         "pitch", "yaw", "roll", "bogus"])
_yaml_data = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(_keys, inner, max_size=5)), max_leaves=20)


@_FUZZ
@given(data=_yaml_data, raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_fuzz_pose_script_parser(tmp_path, data, raw):
    import yaml

    p = tmp_path / "fuzz.yaml"
    p.write_bytes(raw if raw is not None else yaml.safe_dump(data).encode())
    try:
        script = load_pose_script(p)
    except FlapError as exc:
        one_line(exc.args[0].split(": not valid YAML")[0])  # YAML's own error text may span lines
        return
    frames = script.sample(12, 25.0)
    assert frames.shape == (12, 3) and np.isfinite(frames).all()


@_FUZZ
@given(kind=st.sampled_from(["npz-arrays", "npz-cut", "st-cut", "st-meta", "bytes"]),
       dtype=st.sampled_from(["f4", "f8", "i2", "U3", "c8", "?", "O"]),
       shape=st.lists(st.integers(0, 130), min_size=0, max_size=3), fps=st.one_of(
           st.floats(allow_nan=True), st.lists(st.floats(-5, 5), max_size=3), st.text(max_size=5)),
       cut=st.floats(0, 1), raw=st.binary(max_size=300))
def test_fuzz_coefficient_loader(tmp_path, kind, dtype, shape, fps, cut, raw):
    good = _valid_coeffs(2)
    if kind == "npz-arrays":
        p = tmp_path / "f.npz"
        arr = np.zeros(tuple(shape), dtype=object if dtype == "O" else dtype)
        fps_arr = np.array(fps, dtype=object) if isinstance(fps, str) and not fps else np.array(fps)
        try:
            np.savez(p, coeffs=arr, fps=fps_arr)
        except ValueError:
            return
    elif kind in ("npz-cut", "st-cut"):
        p = good.save(tmp_path / ("f.npz" if kind == "npz-cut" else "f.safetensors"))
        data = p.read_bytes()
        p.write_bytes(data[: int(len(data) * cut)])
    elif kind == "st-meta":
        from safetensors.numpy import save_file

        p = tmp_path / "f.safetensors"
        save_file({"coeffs": np.zeros((2, 120), np.float32)}, str(p), metadata={"fps": str(fps)})
    else:
        p = tmp_path / "f.safetensors" if cut > 0.5 else tmp_path / "f.npz"
        p.write_bytes(raw)
    try:
        out = HeadCoeffs.load(p)
    except FlapError as exc:
        assert str(p) in one_line(exc)
        return
    assert out.num_frames >= 1 and out.fps > 0


def _wav_bytes(n: int, rate: int, channels: int, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros((n, channels), np.float32), rate, format="WAV", subtype=subtype)
    return buf.getvalue()


@_FUZZ
@given(kind=st.sampled_from(["cut", "flip", "header", "bytes"]), n=st.integers(0, 4000),
       rate=st.sampled_from([8000, 16000, 44100]), channels=st.integers(1, 3),
       subtype=st.sampled_from(["PCM_16", "FLOAT", "PCM_U8"]), cut=st.floats(0, 1),
       pos=st.integers(0, 80), value=st.integers(0, 255), size_field=st.integers(0, 2**32 - 1),
       raw=st.binary(max_size=400))
def test_fuzz_audio_loader(tmp_path, kind, n, rate, channels, subtype, cut, pos, value, size_field, raw):
    data = bytearray(_wav_bytes(n, rate, channels, subtype))
    if kind == "cut":
        data = data[: int(len(data) * cut)]
    elif kind == "flip" and pos < len(data):
        data[pos] = value
    elif kind == "header":
        data[40:44] = struct.pack("<I", size_field)
    elif kind == "bytes":
        data = bytearray(raw)
    p = tmp_path / "f.wav"
    p.write_bytes(bytes(data))
    try:
        audio = load_audio(p)
    except FlapError as exc:
        assert str(p) in one_line(exc)
        return
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.isfinite(audio).all()


def test_zip_module_is_what_numpy_uses():  # the npz "truncated" case depends on np.load raising for a cut zip
    assert issubclass(zipfile.BadZipFile, Exception)
