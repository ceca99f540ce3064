"""Tiny real video files for the data tests: encoded with PyAV (GIFs with Pillow), content that can be read back.

`numbered` frames carry their own index and a tag: green = blue = 20 + 5 * index, red = 30 + 40 * tag, so a
decoded clip tells which file (tag) and which frames (index) it came from, through lossy codecs and resizing.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

CODECS = {".mp4": ("libx264", "yuv420p"), ".mkv": ("libx264", "yuv420p"), ".webm": ("libvpx-vp9", "yuv420p"),
          ".avi": ("mpeg4", "yuv420p")}


def have_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:
        return False


def encode(path: Path, frames: np.ndarray, fps: float = 12) -> Path:
    """Write (F, H, W, 3) uint8 frames; the suffix picks the container and codec (skips if PyAV lacks it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    codec, pix = CODECS[path.suffix]
    if not have_encoder(codec):
        pytest.skip(f"this PyAV build cannot encode {codec}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix
        stream.bit_rate = 4_000_000  # near-lossless: the tests read pixel values back
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def numbered(frames: int = 24, h: int = 48, w: int = 64, tag: int = 0) -> np.ndarray:
    """(F, H, W, 3) uint8: frame i is flat with G = B = 20 + 5 i (i < 47) and R = 30 + 40 tag (tag < 6)."""
    out = np.empty((frames, h, w, 3), np.uint8)
    out[..., 0] = 30 + 40 * tag
    out[..., 1:] = (20 + 5 * np.arange(frames))[:, None, None, None]
    return out


def frame_indices(video: np.ndarray) -> list[int]:
    """Read `numbered` indices back from (F, H, W, 3) uint8 (or float (C, F, H, W) in [-1, 1])."""
    if video.dtype != np.uint8:
        video = ((np.asarray(video) + 1) * 127.5).transpose(1, 2, 3, 0)
    # + 0.75: YUV round trips come back 0..2 levels dark
    return [int(round((float(f[..., 1:].mean()) - 20 + 0.75) / 5)) for f in video]


def tag_of(video: np.ndarray) -> int:
    if video.dtype != np.uint8:
        video = ((np.asarray(video) + 1) * 127.5).transpose(1, 2, 3, 0)
    return int(round((float(video[..., 0].mean()) - 30) / 40))


def texture(h: int, w: int, seed: int, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Smooth random colour blobs (h, w, 3) uint8, scaled per channel by `tint`."""
    small = np.random.default_rng(seed).integers(0, 256, (max(2, h // 6), max(2, w // 6), 3), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC)).astype(np.float64)
    return np.clip(big * np.asarray(tint), 0, 255).astype(np.uint8)


def scene(frames: int = 24, h: int = 48, w: int = 64, *, dx: float = 0.0, jitter: float = 0.0, seed: int = 0,
          cut_at: int | None = None) -> np.ndarray:
    """A camera over a textured plane: panning `dx` px per frame, shaking by up to `jitter` px, and cutting to a
    differently coloured scene at frame `cut_at`."""
    rng = np.random.default_rng(seed + 100)
    planes = [texture(3 * h, 3 * w, seed, (1.0, 0.5, 0.2)), texture(3 * h, 3 * w, seed + 1, (0.2, 0.6, 1.0))]
    out = []
    for i in range(frames):
        plane = planes[1 if cut_at is not None and i >= cut_at else 0]
        jx, jy = rng.uniform(-jitter, jitter, 2) if jitter else (0.0, 0.0)
        x0, y0 = int(round(w / 2 + dx * i + jx)), int(round(h + jy))
        out.append(plane[y0:y0 + h, x0:x0 + w])
    return np.stack(out)
