"""Does a model obey its reference? Same pose script, different reference people: who comes out?

    python tools/reference_check.py --checkpoint outputs/pipe_c --references a.png b.png --pose nod

For every reference image ``i`` the pipeline generates ``--seconds`` of video (the same pose script,
speech, seed and sampling for all), then dlib's identity distance (mean L2 of 128-d descriptors,
< 0.6 = same person for dlib) of those frames to every reference ``j`` is measured. Issue 13's
target: each output keeps its own person (diagonal ≤ 0.5) and not the other's (off-diagonal ≥ 0.6).
Prints the matrix and writes ``--out`` (JSON) and a strip per reference beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def run(args: argparse.Namespace) -> dict:
    """Generate from each reference and measure every (output, reference) identity distance."""
    import torch

    from flap.audio.io import load_audio
    from flap.eval.bench_report import save_strip
    from flap.eval.dlib_face import identity_distance, reference_descriptor
    from flap.pipeline import FLAPPipeline

    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = FLAPPipeline.from_pretrained(args.checkpoint)
    num_frames = max(1, round(args.seconds * 25))
    speech = load_audio(args.audio)
    speech = np.resize(speech, int(np.ceil(args.seconds * 16000)))
    crops, outputs = [], []
    for ref in args.references:
        crop, final, _ = pipe.prepare(str(ref), audio=speech, controls={"pose": args.pose, "blinks_per_minute": 12},
                                      fps=25, num_frames=num_frames)
        gen = torch.Generator().manual_seed(args.seed)
        frames = np.stack(list(pipe.iter_frames(crop, final, generator=gen, paste=False, progress=False,
                                                num_inference_steps=args.steps, strength=1.0)))
        crops.append(crop.crop)
        outputs.append(frames)
    descs = [reference_descriptor(c) for c in crops]
    matrix = [[identity_distance(frames, d, max_frames=16)["identity_distance"] for d in descs] for frames in outputs]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for ref, frames in zip(args.references, outputs):
        save_strip(out.with_name(f"{out.stem}_{Path(ref).stem}.png"), {Path(ref).stem: frames})
    result = {"checkpoint": str(args.checkpoint), "references": [str(r) for r in args.references],
              "pose": args.pose, "seconds": args.seconds, "steps": args.steps, "seed": args.seed,
              "distance[output_i][reference_j]": matrix}
    out.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="FLAPPipeline folder")
    parser.add_argument("--references", nargs="+", required=True, type=Path, help="reference images (2 or more)")
    parser.add_argument("--pose", default="nod", help="bundled pose script or path")
    parser.add_argument("--audio", default="assets/demo/speech.wav", help="speech (looped to --seconds)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=12, help="DDIM steps (from pure noise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="outputs/reference_check/result.json", help="JSON result path")
    args = parser.parse_args(argv)
    missing = [str(r) for r in args.references if not r.is_file()]
    if len(args.references) < 2 or missing:
        parser.error(f"--references: expected 2 or more existing images, missing: {missing or 'none'}")
    result = run(args)
    names = [Path(r).stem for r in result["references"]]
    print("identity distance (rows: output generated from reference i; columns: reference j)")
    for name, row in zip(names, result["distance[output_i][reference_j]"]):
        print(f"{name:>32} " + " ".join(f"{v:6.3f}" if v is not None else "   n/a" for v in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
