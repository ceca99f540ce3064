"""Still images of any mode and bit depth as 8-bit RGB frames.

Pillow's `convert("RGB")` clips wide integer modes to 0..255 instead of scaling them, so a 16-bit grayscale
PNG (mode "I;16", or "I" in older Pillow) came out white; and it drops alpha, so a transparent background
became whatever colour the hidden pixels held. Here every mode is mapped to (H, W, 3) uint8:

  1, L, P, RGB, CMYK, YCbCr, LAB, HSV   Pillow's own conversion
  I;16 (and I;16B/L/N)                  value / 65535 * 255
  I (32-bit integer)                    value / 65535 * 255 when within 0..65535 (a 16-bit file), else its
                                        min..max stretched to 0..255
  F (32-bit float)                      value * 255 when within 0..1, else its min..max stretched to 0..255
  RGBA, LA, PA, RGBa, La, P + tRNS      composited on black, the background of the worlds the models learn;
                                        a warning says so when a pixel is not opaque

EXIF orientation is applied, as photo viewers do.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (see the module docstring for each mode)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            return image_to_rgb(im, name=path.name)
    except (OSError, SyntaxError, ValueError) as e:  # Pillow's errors for truncated or unknown files
        raise ValueError(f"'{path}' is not an image Pillow can read ({e}); give a PNG, JPEG, BMP or WebP") from e


def image_to_rgb(im: Image.Image, *, name: str = "the image") -> np.ndarray:
    """(H, W, 3) uint8 RGB of a Pillow image of any mode."""
    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I") or im.mode == "F":
        grey = _wide_grey_to_uint8(np.asarray(im), im.mode)  # (H, W)
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        return _on_black(np.asarray(im.convert("RGBA")), name)
    return np.array(im.convert("RGB"))


def _wide_grey_to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) integer or float grey levels -> uint8, scaled by the range the mode holds (not clipped)."""
    a = a.astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and lo >= 0 and hi <= 65535):
        scaled = a / 65535
    elif mode == "F" and lo >= 0 and hi <= 1:
        scaled = a
    else:  # values of no known range: stretch what is there
        scaled = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _on_black(rgba: np.ndarray, name: str) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) uint8 composited over black."""
    alpha = rgba[..., 3:].astype(np.float64) / 255  # (H, W, 1)
    if (alpha < 1).any():
        warnings.warn(f"'{name}' has transparent pixels; they were composited on black (the background the "
                      "models are trained on)", stacklevel=3)
    return np.round(rgba[..., :3] * alpha).astype(np.uint8)
