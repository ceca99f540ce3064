"""The `stillmotion` command line.

One module per group of commands (generate, train, evaluate, checkpoints: info and export, data: preview, curate
and preprocess, research: features and experiment). Each command is two small functions: `_add_<name>(subparsers)`
declares its arguments and points `func` at `_run_<name>(args)`, which does the work; each module's `add` declares
its commands. To add a command, write both and call the adder from `add`. Errors print one line on stderr and exit
with status 2 (set STILLMOTION_DEBUG=1 for a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

from stillmotion import __version__
from stillmotion.cli import checkpoints, data, evaluate, generate, research, train

GROUPS = [generate, train, evaluate, checkpoints, data, research]  # the order of `stillmotion --help`


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stillmotion", description="Video diffusion you can read, train and run on a laptop.")
    parser.add_argument("--version", action="version", version=f"stillmotion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `stillmotion` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the records of what was run
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("stillmotion: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a CLI user gets one line, not a traceback
        if os.environ.get("STILLMOTION_DEBUG"):
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"stillmotion: error: {message}", file=sys.stderr)
        return 2


