"""Issue 15 from the command line: every bad input one clear line, every interruption clean, no user file lost.

Each row of the issue's table runs the real command (subprocess) in a scratch folder and checks the
exit status, exactly one ``<command>: ...`` line naming the key or file, no traceback, and the
folder's listing before and after (nothing added, nothing lost; a user's files keep their bytes).
The loaders' own messages are tested in ``test_bad_input_files.py``.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_bad_input_files import (
    CHECKPOINT_CASES,
    broken_checkpoint,
    write_bad_coeffs,
    write_truncated_wav,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "checkpoints" / "flap_tiny_demo"

#: flap.generate's command-line keys (the Python argument names) by the short name the cases use.
K = {
    "steps": "num_inference_steps",
    "audio": "audio",
    "pose": "pose",
    "image": "image",
    "coeffs": "coeffs",
    "expression_from": "expression_from",
    "checkpoint": "checkpoint",
    "out": "out",
    "fps": "fps",
    "guidance_scale": "guidance_scale",
    "seed": "seed",
    "device": "device",
    "num_frames": "num_frames",
    "progress": "progress",
}


# ----------------------------------------------------------------------------- helpers
def listing(folder: Path) -> list[tuple[str, int, int]]:
    """Every entry under ``folder`` (hidden ones too): (relative path, size or -1 for folders, mtime ns)."""
    out = []
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out.append((str(p.relative_to(folder)), -1 if p.is_dir() else st.st_size, 0 if p.is_dir() else st.st_mtime_ns))
    return out


def command(module_or_script: str, *args: str) -> list[str]:
    head = [sys.executable, str(ROOT / module_or_script)] if module_or_script.endswith(".py") else [
        sys.executable, "-m", module_or_script]
    return [*head, *args]


def env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", **extra}


def run(cmd: list[str], cwd: Path, timeout: float = 600, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)


def assert_one_line(proc, status: int, name: str, *words: str) -> str:
    """Exit ``status``, no traceback, exactly one ``<name>: `` line on stderr, containing every word."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    assert proc.returncode == status, (proc.returncode, text[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"{name}: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def generate_args(work: Path, shared: Path, *extra: str) -> list[str]:
    return command(
        "flap.generate", f"{K['steps']}=1", f"{K['progress']}=false", f"{K['num_frames']}=8",
        f"{K['checkpoint']}={TINY}", f"{K['image']}={shared / 'portraits' / 'grid_bbaf2n_frame.png'}",
        f"{K['audio']}={shared / 'audio' / 'ljspeech_LJ002-0020.wav'}", *extra,
    )


@pytest.fixture()
def work(tmp_path) -> Path:
    """Scratch working folder holding one user file that must survive everything."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "o.mp4").write_bytes(b"the user's own video, not FLAP's")
    return folder


def check_failed_run(work: Path, before, proc, status: int, name: str, *words: str) -> str:
    line = assert_one_line(proc, status, name, *words)
    assert listing(work) == before, "a failed run added or changed files"
    assert (work / "o.mp4").read_bytes() == b"the user's own video, not FLAP's"
    return line


# ----------------------------------------------------------------------------- numbers, device, out=
NUMBER_CASES = [
    (f"{K['steps']}=0", f"{K['steps']}=0", "integer >= 1"),
    (f"{K['steps']}=-1", f"{K['steps']}=-1", "integer >= 1"),
    (f"{K['fps']}=0", f"{K['fps']}=0", "> 0"),
    (f"{K['guidance_scale']}=nan", f"{K['guidance_scale']}=nan", "finite number"),
    ("expression_guidance_scale=-1", "expression_guidance_scale=-1", "finite number >= 0 or null"),
    (f"{K['seed']}=abc", f"{K['seed']}='abc'", "integer"),
]


@pytest.mark.parametrize("arg,key,expected", NUMBER_CASES, ids=[c[0] for c in NUMBER_CASES])
def test_bad_numbers_exit_2_before_any_model(work, shared_data, arg, key, expected):
    before = listing(work)
    # the checkpoint does not exist either: the number is reported, so it was checked before any model file
    missing = work / "no_checkpoint"
    proc = run(generate_args(work, shared_data, arg, f"{K['out']}={work / 'o.mp4'}", f"{K['checkpoint']}={missing}"), work)
    line = check_failed_run(work, before, proc, 2, "flap.generate", "error:", key, expected)
    assert "no_checkpoint" not in line


def test_cuda_device_without_cuda(work, shared_data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = listing(work)
    proc = run(generate_args(work, shared_data, f"{K['device']}=cuda"), work)
    check_failed_run(work, before, proc, 2, "flap.generate", f"{K['device']}=cuda", "CUDA is not available")


def _unwritable(work: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere permission bits say no: use a folder no one can create files in
        return Path("/proc") / "o.mp4"
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    return locked / "o.mp4"


OUT_CASES = ["unwritable folder", "parent is a file", "out is a folder", "coeffs path is a folder"]


@pytest.mark.parametrize("case", OUT_CASES)
def test_bad_out_fails_first_and_loses_nothing(work, shared_data, case):
    if case == "unwritable folder":
        out, words = _unwritable(work), ["cannot write in folder"]
    elif case == "parent is a file":
        (work / "notes.txt").write_text("user notes")
        out, words = work / "notes.txt" / "o.mp4", ["notes.txt is a file"]
    elif case == "out is a folder":
        (work / "clip.mp4").mkdir()
        (work / "clip.mp4" / "keep.txt").write_text("keep")
        out, words = work / "clip.mp4", ["is an existing folder"]
    else:  # the data-loss case: o.coeffs.npz is a folder, o.mp4 the user's file
        (work / "o.coeffs.npz").mkdir()
        out, words = work / "o.mp4", ["o.coeffs.npz is an existing folder"]
    # a broken checkpoint too: out= is reported, so it was checked before any model file was read
    checkpoint, _ = broken_checkpoint(work.parent, "model_index list")
    before = listing(work)
    proc = run(generate_args(work, shared_data, f"{K['out']}={out}", f"{K['checkpoint']}={checkpoint}"), work)
    line = check_failed_run(work, before, proc, 1, "flap.generate", f"{K['out']}=", *words)
    assert "model_index" not in line
    if out.parent.name == "locked":
        out.parent.chmod(0o755)


# ----------------------------------------------------------------------------- bad files (slower: torch + models import)
def _file_cases(folder: Path, shared: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Case name -> (extra arguments, words of the message)."""
    cases = {}
    coeffs = write_bad_coeffs(folder / "coeffs")
    for name, (path, words) in coeffs.items():
        key = K["expression_from"] if name == "truncated safetensors" else K["coeffs"]
        cases[f"{key}: {name}"] = ([f"{key}={path}"], [str(path), words])
    for name in CHECKPOINT_CASES:
        root, bad = broken_checkpoint(folder / "ckpt", name)
        cases[f"checkpoint: {name}"] = ([f"{K['checkpoint']}={root}"], [str(bad)])
    pose = folder / "big.yaml"
    pose.write_text("keyframes:\n  - {t: 0, yaw: 1e9}\n")
    cases["pose yaw 1e9"] = ([f"{K['pose']}={pose}"], [str(pose), "'yaw' = 1e+09 is outside [-180, 180]"])
    wav = write_truncated_wav(folder / "cut.wav")
    cases["truncated wav"] = ([f"{K['audio']}={wav}"], [str(wav), "truncated WAV"])
    tiny = folder / "tiny.png"
    import cv2

    cv2.imwrite(str(tiny), np.full((10, 10, 3), 128, np.uint8))
    cases["10x10 portrait"] = ([f"{K['image']}={tiny}"], [str(tiny), "10×10 px"])
    return cases


FILE_CASE_NAMES = [
    f"{K['coeffs']}: fps is a 2-vector", f"{K['coeffs']}: string data", f"{K['coeffs']}: 0 frames",
    f"{K['coeffs']}: truncated npz", f"{K['expression_from']}: truncated safetensors",
    f"{K['coeffs']}: garbage safetensors", *[f"checkpoint: {c}" for c in CHECKPOINT_CASES],
    "pose yaw 1e9", "truncated wav", "10x10 portrait",
]


@pytest.mark.slow
@pytest.mark.parametrize("case", FILE_CASE_NAMES)
def test_bad_files_one_line_naming_the_file(tmp_path, work, shared_data, case):
    extra, words = _file_cases(tmp_path / "inputs", shared_data)[case]
    before = listing(work)
    proc = run(generate_args(work, shared_data, *extra), work)  # default out: Hydra's run folder under work/
    check_failed_run(work, before, proc, 1, "flap.generate", "error:", *words)
    assert "generating" not in proc.stderr  # failed before any denoising


# ----------------------------------------------------------------------------- signals
def _default_sigint() -> None:
    # A shell's background job (`make test &`, nohup) starts with SIGINT ignored, and a child inherits
    # that, so Python would never see Ctrl-C; the test is about a normal terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd, cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                            preexec_fn=_default_sigint)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {what}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and ".tmp" in p.name]


SIGNAL_CASES = [
    ("SIGTERM during denoising", signal.SIGTERM, "denoising", 143, "stopped by SIGTERM"),
    ("SIGTERM during encoding", signal.SIGTERM, "encoding", 143, "stopped by SIGTERM"),
    ("Ctrl-C during denoising", signal.SIGINT, "denoising", 130, "interrupted (Ctrl-C)"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case,sig,phase,status,words", SIGNAL_CASES, ids=[c[0] for c in SIGNAL_CASES])
def test_signal_stops_cleanly(tmp_path, work, shared_data, case, sig, phase, status, words):
    before = listing(work)
    log = tmp_path / "stderr.txt"
    # denoising: many steps on a short clip; encoding: one step on a long clip (decoding + encoding dominate)
    extra = ([f"{K['steps']}=60", f"{K['num_frames']}=16", f"{K['progress']}=true"] if phase == "denoising"
             else [f"{K['num_frames']}=150"])
    proc = _start(generate_args(work, shared_data, f"{K['out']}={work / 'o.mp4'}", *extra), work, log)
    try:
        if phase == "denoising":
            _wait_for(lambda: "FLAP denoising" in log.read_text(errors="replace"), proc, what="denoising")
            time.sleep(0.5)
        else:  # the encoder's hidden temporary file has bytes in it
            _wait_for(lambda: any(p.stat().st_size > 0 for p in _temps(work) if p.exists()), proc, what="encoding")
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", log.read_text(errors="replace"))
    check_failed_run(work, before, result, status, "flap.generate", words)
    assert not _temps(work)


@pytest.mark.slow
def test_kill_9_leaves_a_temp_that_the_next_run_removes(tmp_path, work, shared_data):
    """SIGKILL cannot be handled: its temporary file stays, and the next run into the folder removes it.

    The next run also has two faces in its portrait: it warns once, naming the face it animates.
    """
    import cv2

    log = tmp_path / "stderr.txt"
    proc = _start(generate_args(work, shared_data, f"{K['out']}={work / 'o.mp4'}", f"{K['num_frames']}=150"), work, log)
    try:
        _wait_for(lambda: any(p.stat().st_size > 0 for p in _temps(work) if p.exists()), proc, what="encoding")
        proc.kill()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stale = _temps(work)
    assert stale and (work / "o.mp4").read_bytes() == b"the user's own video, not FLAP's"

    a = cv2.imread(str(shared_data / "portraits" / "grid_bbaf2n_frame.png"))
    b = cv2.imread(str(shared_data / "portraits" / "grid_lbax4n_frame.png"))
    two = tmp_path / "two.png"
    cv2.imwrite(str(two), np.concatenate([a, cv2.resize(b[::2, ::2], (b.shape[1], b.shape[0]))], axis=1))
    out = work / "new.mp4"
    done = run(generate_args(work, shared_data, f"{K['out']}={out}", f"{K['image']}={two}"), work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert not _temps(work), "the stale temporary file of the killed run is still there"
    assert out.is_file() and (work / "new.coeffs.npz").is_file()
    warned = [line for line in (done.stdout + done.stderr).splitlines() if "faces found" in line]  # Hydra logs to stdout
    assert len(warned) == 1 and f"{two}: 2 faces found; animating the largest, the " in warned[0], done.stdout[-2000:]
    assert (work / "o.mp4").read_bytes() == b"the user's own video, not FLAP's"


# ----------------------------------------------------------------------------- the other commands
class Evil:
    """Unpickling this runs ``os.system``: FLAP's loaders must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_evaluate_missing_and_corrupt_video(work):
    corrupt = work / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    before = listing(work)
    for video, words in ((work / "missing.mp4", ["missing.mp4", "does not exist"]), (corrupt, ["corrupt.mp4"])):
        proc = run(command("flap.evaluate", f"video={video}"), work)
        check_failed_run(work, before, proc, 1, "flap.evaluate", "error:", *words)


def test_required_key_not_given(work):
    before = listing(work)
    proc = run(command("flap.evaluate"), work)
    check_failed_run(work, before, proc, 2, "flap.evaluate", "error: video: required", "video=...")


def test_prepare_missing_folder(work):
    before = listing(work)
    proc = run(command("flap.data.prepare", str(work / "no_such_folder"), str(work / "prepared")), work)
    check_failed_run(work, before, proc, 1, "flap.data.prepare", "no_such_folder")


@pytest.mark.slow
def test_tools_refuse_malicious_pickle_and_truncated_npz_in_one_line(work, shared_data, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Evil(marker)))
    truncated = tmp_path / "cut.npz"
    data = write_bad_coeffs(tmp_path / "coeffs")["truncated npz"][0].read_bytes()
    truncated.write_bytes(data)
    before = listing(work)
    portrait = shared_data / "portraits" / "grid_bbaf2n_frame.png"
    proc = run(command("tools/track_flame.py", f"video={portrait}", f"model_path={evil}"), work)
    check_failed_run(work, before, proc, 1, "track_flame", "error:", "refusing")
    proc = run(command("tools/preview_pose.py", "nod", "--model", str(evil), "--out", str(work / "p.mp4")), work)
    check_failed_run(work, before, proc, 1, "preview_pose", "error:", "refusing")
    proc = run(command("tools/preview_pose.py", str(truncated), "--out", str(work / "p.mp4")), work)
    check_failed_run(work, before, proc, 1, "preview_pose", "error:", str(truncated))
    assert not marker.exists(), "the pickle's code ran"


def test_train_names_the_missing_data_folder(work):
    before = listing(work)
    missing = work / "no_data_here"
    proc = run(command("flap.train", "experiment=stage1_motion"), work, FLAP_DATA=str(missing))
    check_failed_run(work, before, proc, 1, "flap.train", "error:", "data.root=", str(missing))
