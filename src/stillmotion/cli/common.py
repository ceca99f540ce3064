"""What several commands share: argument types and checks made before any work is done, help formatting, and
output folders that a failed command does not leave behind."""

from __future__ import annotations

import argparse
import contextlib
import math

MAX_SEED = 2**63 - 1  # torch seeds are 64-bit; clip i of a command uses seed + i, which must fit as well


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help once: not when the help already says its default in words,
    and not for defaults that say nothing (None, False, "")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = any(action.default is v for v in (None, False, argparse.SUPPRESS)) or action.default == ""
        if "default" in text.lower() or silent:
            return text
        return super()._get_help_string(action)


def _whole_number(text: str, low: int, high: int | None, expected: str) -> int:
    """`text` as an int in [low, high] (high None: no bound), else an argparse error saying `expected`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got '{text}'") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    return _whole_number(text, 1, None, "a positive integer")


def nonnegative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, 0, None, "a whole number >= 0")


def random_seed(text: str) -> int:
    """argparse type: a random seed, 0 .. 2**63 - 1."""
    return _whole_number(text, 0, MAX_SEED, f"a whole number from 0 to 2**63 - 1 ({MAX_SEED})")


def finite_float(text: str) -> float:
    """argparse type: any finite number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
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
    """Fail before spending minutes on sampling if the result could not be written. Creates nothing: the
    folder is made when the result is written (a failed run leaves no empty folder behind)."""
    import tempfile
    from pathlib import Path

    out = Path(path)
    if out.suffix.lower() not in (".mp4", ".gif", ".webm", ".png"):
        raise ValueError(f"cannot write '{path}': use a .mp4, .gif, .webm or .png (contact sheet) file name")
    if out.is_dir():
        raise ValueError(f"cannot write '{path}': it is a folder; give a file name")
    existing = _nearest_existing(out.parent)
    if not existing.is_dir():
        raise ValueError(f"cannot write '{path}': cannot create folder '{out.parent}' ('{existing}' is a file)")
    try:  # a file made there, not os.access: that says yes to root, also on read-only or special filesystems (/proc)
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".stillmotion-check-"):
            pass
    except OSError as e:
        raise ValueError(f"cannot write '{path}': cannot create a file in '{existing}' ({e.strerror})") from e


def _nearest_existing(folder):
    """`folder` or its closest ancestor that exists."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


@contextlib.contextmanager
def output_folder(path):
    """Make the folder `path` (and missing parents) for a command's results; if the command fails, remove the
    ones this call made that are still empty, so a failed run leaves nothing behind."""
    from pathlib import Path

    folder = Path(path)
    made = []
    probe = folder
    while not probe.exists() and probe.parent != probe:
        made.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create folder '{folder}' ({e.strerror}); choose another output path") from e
    try:
        yield folder
    except BaseException:
        for f in made:  # deepest first
            with contextlib.suppress(OSError):
                f.rmdir()  # only succeeds on an empty folder
        raise


def write_clips(out: str, clips: list, *, captions: list[str], fps: float, scale: int) -> None:
    """Write (3, F, H, W) clips in [-1, 1]: a .png contact sheet (captioned), or a video of one clip or a grid."""
    from pathlib import Path

    from stillmotion.data.video_io import save_contact_sheet, video_grid, write_video

    out = Path(out)
    with output_folder(out.parent):
        if out.suffix.lower() == ".png":
            save_contact_sheet(out, clips, captions=captions, scale=scale)
        else:
            write_video(out, clips[0] if len(clips) == 1 else video_grid(clips), fps=fps, scale=scale)
