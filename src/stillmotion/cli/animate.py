"""`stillmotion animate`: (being written)."""

from __future__ import annotations


def add(subparsers) -> None:
    """Declare this module's commands."""


def add_experiment(subparsers) -> None:
    """Declare this module's `stillmotion experiment` subcommand (its measurement)."""
