"""``python -m flap.evaluate``: evaluate generated videos against their requested conditions (Hydra).

Examples::

    python -m flap.evaluate video=out/demo.mp4                       # request = out/demo.mp4.coeffs.npz
    python -m flap.evaluate video=out/ request=nod reference=portrait.png
    python -m flap.evaluate video=gen/ real=gt/ metrics.fid.weights=/models/inception-2015-12-05.pt

Writes, in ``out`` (default: Hydra's run directory): ``metrics.json`` (every number), ``table.md``
and ``table.txt`` (the main numbers, also printed), and per video ``<name>.json`` (its numbers plus the
per-frame requested and tracked angles in degrees, jaw in radians, mouth opening and speech
envelope) and ``<name>_pose.png`` (requested vs tracked pitch / yaw / roll, jaw, mouth vs speech). All files are
written atomically. Config: ``flap/conf/evaluate.yaml``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from flap.cli_support import check_overrides, run_command, run_output_dir
from flap.eval.report import plot_following, write_json, write_tables
from flap.eval.runner import (
    MetricModels,
    TrackingFailed,
    evaluate_set,
    list_videos,
    resolve_tracker,
)
from flap.io import probe_video
from flap.io.runtime import resolve_device

__all__ = ["run", "main"]


def run(cfg: DictConfig | dict) -> dict:
    """Evaluate ``cfg.video`` (file or folder) and write the reports; returns the metrics dict.

    Raises:
        FileNotFoundError / ValueError: missing video, request or unreadable input (names the path);
            every video is probed first (:class:`flap.io.VideoReadError` for a corrupt one).
    """
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    videos = list_videos(cfg.video)
    for video in videos:  # a corrupt file fails here, in one line, before any model or report
        probe_video(video)
    out = run_output_dir(cfg, "outputs/evaluate")
    inputs = [*videos, cfg.get("request"), cfg.get("reference"), cfg.get("audio")]
    options = OmegaConf.to_container(cfg, resolve=True)
    models = MetricModels(options.get("metrics") or {}, resolve_device(options.get("device")))
    tracker = resolve_tracker(options["tracker"]["target"], **(options["tracker"].get("kwargs") or {}))

    def write_one(res, per_frame):
        write_json(out / f"{res['name']}.json", {**res, "per_frame": per_frame}, inputs=inputs)
        if per_frame is None:  # tracking failed: no curves to plot
            return
        plot_following(
            out / f"{res['name']}_pose.png",
            per_frame,
            res["fps"],
            title=f"{res['name']}: requested vs tracked",
            inputs=inputs,
        )

    result = evaluate_set(
        videos,
        tracker=tracker,
        request=options.get("request"),
        audio=options.get("audio"),
        reference=options.get("reference"),
        real=options.get("real"),
        models=models,
        cfg=options,
        on_video=write_one,
    )
    write_json(out / "metrics.json", result, inputs=inputs)
    columns = result["videos"] + ([result["set"]] if len(result["videos"]) > 1 else [])
    if len(result["videos"]) == 1:
        columns[0] = {
            **columns[0],
            "skipped": {**(columns[0].get("skipped") or {}), **(result["set"].get("skipped") or {})},
        }
    md, txt = write_tables(out / "table", columns, inputs=inputs)
    if cfg.get("print_table", True):
        print(txt.read_text(encoding="utf-8"))
        print(f"evaluation written to {out}")
    if result["set"]["num_failed"] == len(videos):
        raise TrackingFailed(
            f"evaluate: no face could be tracked in any of the {len(videos)} video(s); reports written to {out}"
        )
    return result


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_command("flap.evaluate", run, cfg, hydra_run_dir=HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    check_overrides("flap.evaluate")
    main()
