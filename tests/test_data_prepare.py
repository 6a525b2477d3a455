"""Dataset preparation: pure helpers, resumability, corrupt input, hand filter end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from flap.data.crop import crop_frames, head_box, smooth_track
from flap.data.hands import decide_frames, kept_segments
from flap.data.motion import head_motion_variance, top_fraction
from flap.data.prepare import (
    PrepareConfig,
    audio_source,
    clip_id_for,
    load_manifest,
    prepare_dataset,
    resample_indices,
)
from flap.flame.coeffs import HeadCoeffs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: these tiny models run ~100x slower with 2 threads on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def test_resample_indices():
    assert resample_indices(5, 25, 25).tolist() == [0, 1, 2, 3, 4]
    idx = resample_indices(30, 30, 25)  # 1 s at 30 fps -> 25 frames
    assert len(idx) == 25 and idx[0] == 0 and idx[-1] == 28 and (np.diff(idx) >= 1).all()
    assert len(resample_indices(10, 50, 25)) == 5


def test_head_box_smooth_and_crop():
    assert head_box((10, 20, 40, 50), scale=2.0, shift_up=0.1) == (30.0, 40.0, 100.0)
    track = np.array([[10, 10, 4], [np.nan] * 3, [30, 30, 8]], dtype=float)
    filled = smooth_track(track, sigma=0)
    np.testing.assert_allclose(filled[1], [20, 20, 6])
    with pytest.raises(ValueError, match="no face"):
        smooth_track(np.full((3, 3), np.nan))
    frames = np.zeros((1, 40, 40, 3), np.uint8)
    frames[0, 10:20, 10:20] = 255  # white square centred at (15, 15) in pixel-centre coordinates
    out = crop_frames(frames, np.array([[15.0, 15.0, 10.0]]), size=10)
    assert out.shape == (1, 10, 10, 3) and out[0, 2:8, 2:8].min() > 200


def test_decide_frames_and_segments():
    d = decide_frames(7, np.array([0, 3, 6]), np.array([0.1, 0.9, 0.2]), threshold=0.5)
    assert [x.keep for x in d] == [True, False, False, False, False, False, True]
    assert [x.checked for x in d] == [True, False, False, True, False, False, True]
    assert d[3].score == pytest.approx(0.9) and d[1].score is None
    assert kept_segments(np.array([1, 1, 0, 1, 1, 1]), 3) == [(3, 6)]
    assert kept_segments(np.array([1, 1, 0, 1]), 1) == [(0, 2), (3, 4)]


def test_motion_variance_and_top_fraction():
    c = HeadCoeffs.neutral(4)
    c.set_pose_degrees(torch.tensor([[0.0, 0, 0], [0, 10, 0], [0, 0, 0], [0, 10, 0]]))
    assert head_motion_variance(c) == pytest.approx(25.0, rel=1e-4)  # var of [0,10,0,10] deg
    assert top_fraction({"a": 1.0, "b": 3.0, "c": 2.0, "d": 0.0, "e": 5.0}, 0.2) == ["e"]
    assert top_fraction({"a": 1.0, "b": 3.0, "c": 2.0}, 0.5) == ["b", "c"]
    with pytest.raises(ValueError):
        top_fraction({"a": 1.0}, 0.0)


def _nodding_tracker(frames, fps):
    """Stub tracker: yaw oscillating ±10° (the real tracker is tested in tests/test_tracking*)."""
    c = HeadCoeffs.neutral(len(frames), fps)
    yaw = 10.0 * np.sin(np.arange(len(frames)) / 5.0)
    c.set_pose_degrees(torch.tensor(np.stack([0 * yaw, yaw, 0 * yaw], 1), dtype=torch.float32))
    return c


@pytest.fixture()
def raw_dir(tmp_path, shared_data):
    raw = tmp_path / "raw"
    (raw / "grid").mkdir(parents=True)
    shutil.copy(shared_data / "video" / "grid" / "bbaf2n.mpg", raw / "grid" / "bbaf2n.mpg")
    shutil.copy(shared_data / "video" / "liveportrait_d0.mp4", raw / "d0.mp4")
    (raw / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    return raw


def test_prepare_resume_and_corrupt(tmp_path, raw_dir):
    out = tmp_path / "out"
    cfg = PrepareConfig(size=48, tracker=_nodding_tracker, workers=1)
    m = prepare_dataset(raw_dir, out, cfg)
    by_id = {r["clip_id"]: r for r in m["clips"]}
    assert m["run"] == {"processed": 3, "skipped": 0}
    assert by_id["broken"]["status"] == "error" and "broken.mp4" in by_id["broken"]["reason"]
    grid = by_id["grid__bbaf2n"]
    assert grid["status"] == "kept" and grid["num_frames"] == 75 and grid["motion_source"] == "flame_pose_deg2"
    assert grid["motion_variance"] == pytest.approx(np.var(10 * np.sin(np.arange(75) / 5)), rel=1e-3)
    clip = out / "clips" / "grid__bbaf2n"
    assert len(list((clip / "frames").glob("*.png"))) == 75
    assert HeadCoeffs.load(clip / "coeffs.npz").data.shape == (75, 120)
    import soundfile as sf

    audio, sr = sf.read(clip / "audio.wav")
    assert sr == 16000 and audio.ndim == 1 and len(audio) == 48000
    assert by_id["d0"]["has_audio"] is False and not (out / "clips" / "d0" / "audio.wav").exists()

    # Re-run on a finished folder: no work, nothing rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    m2 = prepare_dataset(raw_dir, out, cfg)
    assert m2["run"] == {"processed": 0, "skipped": 3}
    assert {p: p.stat().st_mtime_ns for p in (out / "records").iterdir()} == stamps
    assert load_manifest(out)["summary"] == {"kept": 2, "dropped": 0, "error": 1}
    with pytest.raises(ValueError, match="other settings.*size"):
        prepare_dataset(raw_dir, out, PrepareConfig(size=64, tracker=_nodding_tracker))

    # Interrupted during d0: its record is missing and a half-built temporary folder is left.
    (out / "records" / "d0.json").unlink()
    shutil.rmtree(out / "clips" / "d0")
    (out / "clips" / ".tmp-d0" / "frames").mkdir(parents=True)
    m3 = prepare_dataset(raw_dir, out, cfg)
    assert m3["run"] == {"processed": 1, "skipped": 2}
    assert not (out / "clips" / ".tmp-d0").exists() and (out / "clips" / "d0" / "meta.json").is_file()
    assert (out / "records" / "grid__bbaf2n.json").stat().st_mtime_ns == stamps[out / "records" / "grid__bbaf2n.json"]


def test_audio_source_prefers_stream_then_sidecar(tmp_path):
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"")
    assert audio_source(video, has_audio_stream=True) == video
    assert audio_source(video, has_audio_stream=False) is None
    (tmp_path / "talk.wav").write_bytes(b"")
    assert audio_source(video, has_audio_stream=False) == tmp_path / "talk.wav"
    assert audio_source(video, has_audio_stream=True) == video


def test_clip_id(tmp_path):
    assert clip_id_for(tmp_path / "a" / "b.mp4", tmp_path) == "a__b"


def build_tiny_grounding_dino(folder):
    """Save a tiny random Grounding DINO + processor (local BERT vocab, no download) into ``folder``."""
    from transformers import (
        BertConfig,
        BertTokenizerFast,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "hand", "finger", "face"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    image_proc = GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 128})
    torch.manual_seed(0)
    cfg = GroundingDinoConfig(
        backbone_config=SwinConfig(embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
                                   image_size=64, out_features=["stage2", "stage3", "stage4"]),
        text_config=BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=16, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=10, encoder_n_points=1,
        decoder_n_points=1, max_text_len=16)
    GroundingDinoForObjectDetection(cfg).save_pretrained(folder)
    GroundingDinoProcessor(image_processor=image_proc, tokenizer=tok).save_pretrained(folder)
    return folder


def test_hand_filter_end_to_end(tmp_path, shared_data):
    from flap.data.hands import HandDetector

    model_dir = build_tiny_grounding_dino(tmp_path / "gdino")
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(shared_data / "video" / "grid" / "lbax4n.mpg", raw / "lbax4n.mpg")
    # Threshold at the median score of the checked frames: some frames are dropped, some kept.

    probe = prepare_dataset(raw, tmp_path / "probe", PrepareConfig(size=64, tracker="none", hand_model=str(model_dir),
                                                                    hand_threshold=1.1, min_frames=2))
    frames = probe["clips"][0]["hand_filter"]["frames"]
    scores = np.array([f["score"] for f in frames if f["checked"]])
    assert len(frames) == 75 and len(scores) == 25  # every 3rd frame of 75
    threshold = float(np.median(scores))
    m = prepare_dataset(raw, tmp_path / "out", PrepareConfig(size=64, tracker="none", hand_model=str(model_dir),
                                                             hand_threshold=threshold, min_frames=2))
    rec = m["clips"][0]
    decisions = rec["hand_filter"]["frames"]
    assert [d["frame"] for d in decisions] == list(range(75))
    for d in decisions:
        assert d["checked"] == (d["frame"] % 3 == 0)
        if d["checked"]:
            assert d["keep"] == (d["score"] <= threshold)
    dropped = sum(not d["keep"] for d in decisions)
    assert 0 < dropped < 75 and rec["hand_filter"]["dropped_frames"] == dropped
    written = sorted(int(p.stem) for p in (tmp_path / "out" / "clips" / "lbax4n" / "frames").glob("*.png"))
    assert written == [t for s, e in rec["segments"] for t in range(s, e)]
    assert all(decisions[t]["keep"] for t in written)
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["clips"][0]["hand_filter"]["frames"] == decisions
    with pytest.raises(FileNotFoundError, match="config.json"):
        HandDetector(tmp_path / "nope")
