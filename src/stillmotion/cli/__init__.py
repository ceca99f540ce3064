"""The `stillmotion` command line.

One module per group of commands (generate; the applications animate, extend, interpolate and edit; demo,
train, evaluate, checkpoints: info and export, data: preview,
curate and preprocess, research: features and experiment). Each command is two small functions:
`_add_<name>(subparsers)` declares its arguments and points `func` at `_run_<name>(args)`, which does the work; each
module's `add` declares its commands. To add a command, write both and call the adder from `add`. Errors, bad
options included, print one line on stderr (`stillmotion: error: ...`) and exit with status 2 (set
STILLMOTION_DEBUG=1 for a traceback); warnings print one line (`stillmotion: warning: ...`) and the command goes on.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from stillmotion import __version__
from stillmotion.cli import (
    animate,
    checkpoints,
    data,
    demo,
    edit,
    evaluate,
    extend,
    generate,
    interpolate,
    research,
    train,
)
from stillmotion.cli.common import HelpFormatter

# the order of `stillmotion --help`
GROUPS = [generate, animate, extend, interpolate, edit, demo, train, evaluate, checkpoints, data, research]


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error convention: a bad option is one line on stderr (not the usage block and
    then the error), pointing at --help; exit status 2. Subcommands' parsers are of this class too."""

    def error(self, message: str):
        self.exit(2, f"stillmotion: error: {' '.join(message.split())}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="stillmotion", description="Video diffusion you can read, train and run on a laptop.")
    parser.add_argument("--version", action="version", version=f"stillmotion {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add(subparsers)
    _defaults_once(parser)
    return parser


def _defaults_once(parser: argparse.ArgumentParser) -> None:
    """Every command that prints its defaults in --help uses common.HelpFormatter, which does not print
    "(default: X)" a second time after a help text that already names its default."""
    for action in parser._actions:  # argparse has no public way to reach a parser's subparsers
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if child.formatter_class is argparse.ArgumentDefaultsHelpFormatter:
                    child.formatter_class = HelpFormatter
                _defaults_once(child)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the library as the CLI's errors are: one line on stderr, no source location."""
    print(f"stillmotion: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `stillmotion` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (already reported): a status, as for commands
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the records of what was run
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # restores the caller's warning display (tests call main in-process)
            warnings.showwarning = _one_line_warning
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


