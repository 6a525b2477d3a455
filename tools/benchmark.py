#!/usr/bin/env python
"""Run FLAP's benchmarks and print their figures (the README's performance table comes from here).

Each module in ``tools/benchmarks/`` exposes ``run() -> dict``; figures are ratios against a
reference run in the same process where a comparison applies, because shared CPUs are noisy.
Every benchmark runs in its own fresh Python process, so its memory figures never include what an
earlier benchmark left behind (memory is read as ``VmHWM``: :mod:`benchmarks.memory`).

    python tools/benchmark.py                 # all benchmarks
    python tools/benchmark.py flame audio     # chosen ones
    python tools/benchmark.py --list
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmarks  # noqa: E402

HELPERS = {"timing", "memory"}  # modules in tools/benchmarks/ that are not benchmarks


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in HELPERS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: run one benchmark, print its JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(importlib.import_module(f"benchmarks.{args.one}").run()))
        return 0
    if args.list:
        print("\n".join(available()))
        return 0
    unknown = set(args.names) - set(available())
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; available: {available()}")
    results = {}
    for name in args.names or available():
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", name], stdout=subprocess.PIPE, text=True,
                              check=False)
        if proc.returncode != 0:
            print(f"{name}: failed (exit status {proc.returncode}); its error is printed above", flush=True)
            results[name] = {"error": f"exit status {proc.returncode}"}
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name} ({time.perf_counter() - t0:.0f} s): {json.dumps(results[name])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
