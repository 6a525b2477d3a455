"""``python -m flap.app [--host 127.0.0.1] [--port 7860] [--share false] [--output-dir outputs/app]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "parse_args"]


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options of the studio (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m flap.app",
        description="FLAP web studio: portrait + speech -> talking head, with the head motion drawn as "
                    "keyframes and previewed on a FLAME mesh before diffusion. Open the printed URL.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    parser.add_argument("--share", type=_bool, default=False, metavar="{true,false}",
                        help="Gradio public tunnel (needs the internet; default false)")
    parser.add_argument("--output-dir", default="outputs/app",
                        help="the only folder the app writes to: previews, runs, uploads (default outputs/app)")
    parser.add_argument("--checkpoints", action="append", default=[], metavar="DIR",
                        help="folder holding pipeline folders, or a pipeline folder itself (repeatable; "
                             "default: checkpoints/ of the project and of the current folder)")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA if available), cpu, cuda, ...")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse the options and serve until interrupted."""
    args = parse_args(argv)
    if not 0 < args.port < 65536:
        raise SystemExit(f"flap.app: error: --port {args.port}: expected 1..65535")
    import importlib.util

    if importlib.util.find_spec("gradio") is None:  # not imported here: it reads its environment at import
        raise SystemExit('flap.app: error: gradio is not installed; pip install -e ".[app]" (or make install)')
    from flap.app import launch

    try:
        launch(args.output_dir, host=args.host, port=args.port, share=args.share,
               checkpoint_roots=args.checkpoints, device=args.device, block=True)
    except OSError as exc:
        raise SystemExit(f"flap.app: error: {exc}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
