"""Reading and writing video files, contact sheets, and the uint8 <-> float conversion.

Two layouts meet here:
  on disk / numpy   uint8 frames (F, H, W, 3), RGB;
  in the library    float (C, F, H, W) or (B, C, F, H, W) in [-1, 1].
`to_float` and `to_uint8` convert between them exactly (uint8 -> float -> uint8 is the identity).

Decoding uses PyAV (FFmpeg); MP4 is written as H.264 yuv420p with even width and height so that browsers
play it; GIFs are written with Pillow (which merges identical consecutive frames into one longer frame, so
read a GIF back with `fps=` when the frame count matters).
"""

from __future__ import annotations

import math
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".avi", ".mkv", ".gif")  # what folder scans treat as video
WRITABLE_SUFFIXES = (".mp4", ".gif", ".webm")


class VideoReadError(ValueError):
    """A file could not be read as a video; the message names the file, the problem and a fix."""


class VideoWriteError(ValueError):
    """A video could not be written; the message names the file, the problem and a fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file contains.

    Attributes:
        path: the file.
        width, height: frame size in pixels.
        fps: average frame rate (frames per second).
        num_frames: frame count (from the container, or counted by decoding when it does not say).
        duration: seconds.
        codec: decoder name, e.g. "h264", "gif", "vp9".
    """

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    codec: str


# ----------------------------------------------------------------------------------------------- reading

def _open(path: Path):
    """Open `path` for decoding and return (container, video stream), or raise a VideoReadError."""
    if not path.exists():
        raise VideoReadError(f"{path}: file not found; check the path (current folder: {Path.cwd()})")
    if path.is_dir():
        raise VideoReadError(f"{path}: is a folder, expected a video file (.mp4, .webm, .avi, .mkv, .gif)")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: file is empty (0 bytes); re-export or re-download it")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoReadError(f"{path}: not a readable video ({e}); expected .mp4, .webm, .avi, .mkv or "
                             ".gif; if it is one, it may be truncated or corrupt: re-export it") from e
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: contains no video stream (audio only, or an empty recording?); "
                             "pass a file with video frames")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Describe a video file without returning its pixels.

    Args:
        path: a video file (.mp4, .webm, .avi, .mkv, .gif, ...).

    Returns:
        VideoInfo. `num_frames` is decoded and counted when the container does not store it.

    Raises:
        VideoReadError: missing file, not a video, no video stream, or no decodable frames.
    """
    path = Path(path)
    container, stream = _open(path)
    try:
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = _stream_fps(stream)
        codec = stream.codec_context.name
        num_frames = int(stream.frames or 0)
        if num_frames == 0:  # webm/gif often do not say: count by decoding
            try:
                num_frames = sum(1 for _ in container.decode(stream))
            except av.error.FFmpegError as e:
                raise VideoReadError(f"{path}: decoding failed ({e}); the file is corrupt or truncated, "
                                     "re-export or re-download it") from e
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = num_frames / fps if fps else 0.0
    finally:
        container.close()
    if num_frames == 0:
        raise VideoReadError(f"{path}: contains no video frames; re-export it")
    return VideoInfo(path, width, height, fps, num_frames, duration, codec)


def _gif_timing(container) -> tuple[float, int] | None:
    """(fps, frames) that `write_video` records in a GIF's comment, or None for other GIFs."""
    match = re.search(r"stillmotion fps=([0-9.]+) frames=(\d+)", container.metadata.get("comment", ""))
    return (float(match[1]), int(match[2])) if match else None


def read_video(path: str | os.PathLike, *, num_frames: int | None = None, stride: int = 1,
               fps: float | None = None, start: float = 0.0) -> np.ndarray:
    """Decode a video into uint8 RGB frames.

    Frames are chosen in three steps: from `start` seconds on, resampled to `fps` if given (each output
    time takes the frame shown at that moment, so frames repeat when upsampling and are skipped when
    downsampling), then every `stride`-th, then at most `num_frames`. Decoding stops as soon as enough
    frames are collected.

    Args:
        path: .mp4, .webm, .avi, .mkv, .gif, or anything FFmpeg reads.
        num_frames: cap on the number of returned frames (None: all).
        stride: keep every `stride`-th selected frame.
        fps: target frame rate; None keeps the file's frames as they are.
        start: seconds to skip at the beginning.

    Returns:
        (F, H, W, 3) uint8.

    Raises:
        VideoReadError: missing file, not a video, truncated/corrupt data, or no frames selected.
    """
    path = Path(path)
    if stride < 1 or (num_frames is not None and num_frames < 1) or (fps is not None and fps <= 0):
        raise ValueError(f"read_video({path}): need stride >= 1, num_frames >= 1 or None, fps > 0 or None; "
                         f"got stride={stride}, num_frames={num_frames}, fps={fps}")
    container, stream = _open(path)
    src_fps = _stream_fps(stream) or 25.0
    declared = int(stream.frames or 0)
    timing = _gif_timing(container) if fps is None and stream.codec_context.name == "gif" else None
    if timing:
        # GIF encoders merge identical neighbouring frames into one longer frame (a still stretch shrinks to one
        # frame); resampling at the frame rate `write_video` recorded restores every frame.
        fps = timing[0]
        num_frames = min(num_frames or timing[1], timing[1])
    frames: list[np.ndarray] = []
    selected = 0          # frames chosen before the stride is applied
    target = 0            # index of the next output time when resampling to `fps`
    decoded = 0
    reached_end = True
    try:
        for i, frame in enumerate(container.decode(stream)):
            decoded += 1
            ts = frame.time if frame.time is not None else i / src_fps
            if fps is None:
                repeats = 1 if ts >= start - 0.5 / src_fps else 0
            else:
                # This frame is on screen until the next one: [ts, ts + its duration). Output time k is
                # start + k / fps; emit this frame for every output time before its end.
                dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
                end = ts + (dur if dur > 0 else 1.0 / src_fps)
                repeats = 0
                while start + target / fps < end - 1e-9:
                    target += 1
                    repeats += 1
            if repeats:
                rgb = None
                for _ in range(repeats):
                    if selected % stride == 0:
                        rgb = frame.to_ndarray(format="rgb24") if rgb is None else rgb
                        frames.append(rgb)
                    selected += 1
                    if num_frames is not None and len(frames) >= num_frames:
                        break
            if num_frames is not None and len(frames) >= num_frames:
                reached_end = False
                break
    except av.error.FFmpegError as e:
        raise VideoReadError(f"{path}: decoding failed after {decoded} frame(s) ({e}); the file is corrupt "
                             "or truncated: re-export or re-download it") from e
    finally:
        container.close()
    if decoded == 0:
        raise VideoReadError(f"{path}: contains no decodable video frames (empty, truncated or corrupt); "
                             "re-export or re-download it")
    if reached_end and declared and decoded < declared - 1:
        raise VideoReadError(f"{path}: truncated or corrupt: the container declares {declared} frames but "
                             f"only {decoded} could be decoded; re-export or re-download it")
    if not frames:
        raise VideoReadError(f"{path}: no frames selected (start={start}s is past the end of a "
                             f"{decoded / src_fps:.2f}s video?); lower `start`")
    return np.stack(frames)


# ----------------------------------------------------------------------------------------------- conversion

def to_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames (F, H, W, 3) -> float32 (C, F, H, W) in [-1, 1]; exact inverse of `to_uint8`."""
    x = torch.as_tensor(np.asarray(frames))
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"to_float expects uint8 frames (F, H, W, 3); got {x.dtype} {tuple(x.shape)}")
    return x.permute(3, 0, 1, 2).float().div(127.5).sub(1.0)  # (F,H,W,C) -> (C,F,H,W)


def to_uint8(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """float (C, F, H, W) or (B, C, F, H, W) in [-1, 1] -> uint8 (F, H, W, 3) or (B, F, H, W, 3).

    Values are clamped to [-1, 1] and rounded to the nearest level. C may be 1 (grey, repeated to 3).
    """
    x = torch.as_tensor(video).detach().to("cpu", torch.float32)
    if x.ndim not in (4, 5) or x.shape[-4] not in (1, 3):
        raise ValueError(f"to_uint8 expects (C, F, H, W) or (B, C, F, H, W) with C in (1, 3); "
                         f"got {tuple(x.shape)}")
    x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    x = x.movedim(-4, -1)  # (..., C, F, H, W) -> (..., F, H, W, C)
    if x.shape[-1] == 1:
        x = x.expand(*x.shape[:-1], 3)
    return x.contiguous().numpy()


def as_frames(video) -> np.ndarray:
    """Any one clip -> uint8 (F, H, W, 3): uint8 (F, H, W, 3) / (F, H, W) / (H, W, 3) as is, or a float
    (C, F, H, W) tensor/array in [-1, 1]."""
    if isinstance(video, torch.Tensor) or (isinstance(video, np.ndarray) and video.dtype != np.uint8):
        return to_uint8(video)
    arr = np.asarray(video)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames or a float tensor; got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 3:   # one image (H, W, 3)
        arr = arr[None]
    if arr.ndim == 3:                          # grey frames (F, H, W)
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (F, H, W, 3); got shape {arr.shape}")
    return arr


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour integer upscale of (F, H, W, 3) frames to (F, H*scale, W*scale, 3)."""
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer; got {scale}")
    scale = int(scale)
    return frames if scale == 1 else frames.repeat(scale, axis=1).repeat(scale, axis=2)


# ----------------------------------------------------------------------------------------------- writing

def _temp_path(path: Path) -> Path:
    """A fresh hidden file name next to `path` (same folder, so the final rename is atomic), after checking
    that the folder exists or can be made and is writable."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VideoWriteError(f"{path}: cannot create folder {folder} ({e.strerror}); choose another output "
                              "path") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise VideoWriteError(f"{path}: folder {folder} is not writable; choose another output path or fix "
                              "its permissions")
    return folder / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part{path.suffix}"


def _encode_av(tmp: Path, frames: np.ndarray, fps: float, fmt: str, codec: str, options: dict) -> None:
    f, h, w, _ = frames.shape
    # yuv420p halves chroma resolution, so both sides must be even: repeat the last row/column.
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    container_opts = {"movflags": "+faststart"} if fmt == "mp4" else {}
    with av.open(str(tmp), mode="w", format=fmt, options=container_opts) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = options
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():  # flush
            container.mux(packet)


def _encode_gif(tmp: Path, frames: np.ndarray, fps: float) -> None:
    images = [Image.fromarray(rgb) for rgb in frames]
    duration = max(20, round(1000 / fps))  # ms; GIF stores hundredths of a second
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0, duration=duration,
                   disposal=1, optimize=False, comment=f"stillmotion fps={1000 / duration:g} frames={len(frames)}")


def write_video(path: str | os.PathLike, video, fps: float = 8, scale: int = 1) -> Path:
    """Write a clip to .mp4 (H.264, browser-playable), .gif (looping) or .webm (VP9).

    The file appears atomically: frames go to a temporary file in the same folder, renamed at the end.

    Args:
        path: output file; the suffix picks the format. Missing parent folders are created.
        video: uint8 (F, H, W, 3) frames, or a float (C, F, H, W) tensor/array in [-1, 1].
        fps: frames per second.
        scale: integer nearest-neighbour upscale (a 32x32 clip is easier to see at 4x).

    Returns:
        The written path.

    Raises:
        VideoWriteError: unsupported suffix, or the folder cannot be created or written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE_SUFFIXES:
        raise VideoWriteError(f"{path}: cannot write '{suffix or 'no suffix'}' videos; use one of "
                              f"{', '.join(WRITABLE_SUFFIXES)}")
    if not fps or fps <= 0:
        raise VideoWriteError(f"{path}: fps must be positive; got {fps}")
    frames = upscale(as_frames(video), scale)
    if len(frames) == 0:
        raise VideoWriteError(f"{path}: the video has no frames")
    tmp = _temp_path(path)
    try:
        if suffix == ".gif":
            _encode_gif(tmp, frames, fps)
        elif suffix == ".mp4":
            _encode_av(tmp, frames, fps, "mp4", "libx264", {"crf": "17", "preset": "medium"})
        else:
            _encode_av(tmp, frames, fps, "webm", "libvpx-vp9", {"crf": "24", "b": "0", "deadline": "good"})
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------- galleries

def _clip_list(videos) -> list[np.ndarray]:
    if isinstance(videos, (torch.Tensor, np.ndarray)) and np.ndim(videos) == 5:
        if isinstance(videos, torch.Tensor) or videos.dtype != np.uint8:
            return list(to_uint8(videos))       # (B, C, F, H, W) float -> B x (F, H, W, 3)
        return list(videos)                     # (B, F, H, W, 3) uint8
    return [as_frames(v) for v in videos]


def _pad_frames(clip: np.ndarray, frames: int) -> np.ndarray:
    """Hold the last frame so that every clip has `frames` frames."""
    return clip if len(clip) >= frames else np.concatenate([clip, clip[-1:].repeat(frames - len(clip), 0)])


def video_grid(videos, ncols: int | None = None, *, pad: int = 1, pad_value: int = 40) -> np.ndarray:
    """Tile several clips into one clip (a gallery), e.g. for one animated GIF.

    Args:
        videos: a list of clips (uint8 (F, H, W, 3) or float (C, F, H, W)), or a batch (B, C, F, H, W).
            All clips need the same H, W; shorter clips hold their last frame.
        ncols: clips per row (default: about square).
        pad: pixels between tiles; pad_value: their grey level.

    Returns:
        (F, rows * (H + pad) - pad, ncols * (W + pad) - pad, 3) uint8.
    """
    clips = _clip_list(videos)
    if not clips:
        raise ValueError("video_grid needs at least one clip")
    h, w = clips[0].shape[1:3]
    if any(c.shape[1:3] != (h, w) for c in clips):
        raise ValueError(f"video_grid needs clips of one size; got {sorted({c.shape[1:3] for c in clips})}")
    ncols = ncols or math.ceil(math.sqrt(len(clips)))
    nrows = math.ceil(len(clips) / ncols)
    f = max(len(c) for c in clips)
    grid = np.full((f, nrows * (h + pad) - pad, ncols * (w + pad) - pad, 3), pad_value, np.uint8)
    for i, clip in enumerate(clips):
        r, c = divmod(i, ncols)
        grid[:, r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = _pad_frames(clip, f)
    return grid


def _wrap(text: str, font, width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line] if line else lines or [""]


def contact_sheet(videos, captions: Sequence[str] | None = None, *, scale: int = 2,
                  max_frames: int | None = None, pad: int = 2) -> Image.Image:
    """One row per clip, one column per frame, each row's caption printed above it.

    Args:
        videos: a list of clips (uint8 (F, H, W, 3) or float (C, F, H, W)), or a batch (B, C, F, H, W).
        captions: one string per clip, or None.
        scale: integer nearest-neighbour upscale of the frames.
        max_frames: show at most this many frames per row, evenly spaced (None: all).
        pad: pixels between frames and rows.

    Returns:
        An RGB PIL image.
    """
    clips = [upscale(c, scale) for c in _clip_list(videos)]
    if not clips:
        raise ValueError("contact_sheet needs at least one clip")
    if captions is not None and len(captions) != len(clips):
        raise ValueError(f"contact_sheet got {len(clips)} clips but {len(captions)} captions")
    if max_frames is not None:
        clips = [c[np.linspace(0, len(c) - 1, min(max_frames, len(c))).round().astype(int)] for c in clips]
    h = max(c.shape[1] for c in clips)
    w = max(c.shape[2] for c in clips)
    ncols = max(len(c) for c in clips)
    sheet_w = ncols * (w + pad) + pad
    font = ImageFont.load_default(size=12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = 15
    texts = [_wrap(c, font, sheet_w - 2 * pad, probe) for c in captions] if captions else [[] for _ in clips]
    heights = [len(t) * line_h + h + pad + (pad if t else 0) for t in texts]
    sheet = Image.new("RGB", (sheet_w, sum(heights) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for clip, lines, row_h in zip(clips, texts, heights):
        for k, line in enumerate(lines):
            draw.text((pad, y + k * line_h), line, fill=(230, 230, 230), font=font)
        top = y + len(lines) * line_h + (pad if lines else 0)
        for j, frame in enumerate(clip):
            sheet.paste(Image.fromarray(frame), (pad + j * (w + pad), top))
        y += row_h
    return sheet


def save_contact_sheet(path: str | os.PathLike, videos, captions: Sequence[str] | None = None, *,
                       scale: int = 2, max_frames: int | None = None) -> Path:
    """`contact_sheet(...)` saved to `path` (.png or .jpg); written to a temporary file, then renamed."""
    path = Path(path)
    image = contact_sheet(videos, captions, scale=scale, max_frames=max_frames)
    tmp = _temp_path(path)
    try:
        image.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
