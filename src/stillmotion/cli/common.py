"""What several commands share: argument types and checks made before any work is done."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text}")
    return value


def add_motion_sampling_options(p: argparse.ArgumentParser) -> None:
    """--noise-warp: how much the starting noise follows the motion (planned or --motion); opt-in."""
    p.add_argument("--noise-warp", type=unit_float, default=None, metavar="A",
                   help="how much the starting noise follows the motion (0: independent per frame, 1: one noise "
                        "pattern panning along it; diffusion/noise_warp.py). Default: what the model was trained with")


def nonnegative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'") from None
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def check_writable(path: str) -> None:
    """Fail before spending minutes on sampling if the result could not be written."""
    from pathlib import Path

    out = Path(path)
    if out.suffix.lower() not in (".mp4", ".gif", ".webm", ".png"):
        raise ValueError(f"cannot write '{path}': use a .mp4, .gif, .webm or .png (contact sheet) file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot write '{path}': cannot create folder '{out.parent}' ({e.strerror})") from e
    import tempfile

    try:  # a file made there, not os.access: that says yes to root, also on read-only or special filesystems (/proc)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".stillmotion-check-"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write '{path}': cannot create a file in '{out.parent}' ({e.strerror})") from e
