"""How close is a clip to a reference clip? PSNR and SSIM, for prediction and interpolation tasks.

Both take two clips of the same layout and shape, in either of the library's two layouts:
  uint8   (F, H, W, 3) frames as read from disk (`read_video`), values 0..255, data range 255;
  float   (C, F, H, W) or (B, C, F, H, W) tensors/arrays in [-1, 1] as the library uses them, data range 2
          (pass `data_range` when your floats live elsewhere, e.g. 1.0 for [0, 1]).
All arithmetic is float64. Float clips are not quantised, so a float prediction is scored as it is.

PSNR (dB, higher is better, [0, inf)): 10 log10(data_range^2 / MSE); identical clips give inf.
SSIM (Wang, Bovik, Sheikh & Simoncelli 2004, "Image quality assessment: from error visibility to structural
similarity", eq. 13): 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample)
statistics, averaged over the valid (unpadded) window positions and the colour channels of each frame, then
over frames. Unitless, at most 1 (identical), 0 for no structural agreement, can dip below 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _frames64(x, name: str) -> tuple[torch.Tensor, float]:
    """One clip -> (N, C, H, W) float64 frames and its default data range (255 for uint8, 2 for float)."""
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x.detach().cpu()
    if t.dtype == torch.uint8:
        if t.ndim != 4 or t.shape[-1] != 3:
            raise ValueError(f"{name}: uint8 clips must be frames (F, H, W, 3); got shape {tuple(t.shape)}")
        return t.permute(0, 3, 1, 2).to(torch.float64), 255.0         # (F, H, W, 3) -> (F, 3, H, W)
    if not t.is_floating_point():
        raise ValueError(f"{name}: expected uint8 frames (F, H, W, 3) or a float clip (C, F, H, W); got {t.dtype}")
    if t.ndim == 4:
        t = t[None]                                                     # (C, F, H, W) -> (1, C, F, H, W)
    if t.ndim != 5:
        raise ValueError(f"{name}: float clips must be (C, F, H, W) or (B, C, F, H, W); got shape {tuple(t.shape)}")
    b, c, f, h, w = t.shape
    return t.to(torch.float64).transpose(1, 2).reshape(b * f, c, h, w), 2.0  # (B, C, F, H, W) -> (B*F, C, H, W)


def _is_uint8(x) -> bool:
    return x.dtype == torch.uint8 if isinstance(x, torch.Tensor) else np.asarray(x).dtype == np.uint8


def _pair(a, b) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Check two clips share dtype kind and shape; return them as (N, C, H, W) float64 and the default range."""
    if _is_uint8(a) != _is_uint8(b):
        raise ValueError("the two clips must both be uint8 frames (F, H, W, 3) or both float clips (C, F, H, W); "
                         "convert one with stillmotion.data.video_io.to_float or to_uint8")
    x, range_a = _frames64(a, "a")
    y, _ = _frames64(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"the clips differ in shape: a {tuple(np.shape(a))} vs b {tuple(np.shape(b))}; compare "
                         "clips with the same frame count, size and channels (crop or resample one first)")
    return x, y, range_a


def psnr(a, b, data_range: float | None = None, *, per_frame: bool = False) -> float | np.ndarray:
    """Peak signal-to-noise ratio between two clips, in dB (higher is better; identical clips give inf).

    Args:
        a, b: uint8 (F, H, W, 3) frames, or float (C, F, H, W) / (B, C, F, H, W) clips; same shape.
        data_range: max minus min of the value range (default: 255 for uint8, 2 for [-1, 1] floats).
        per_frame: return one value per frame (N,) instead of one for the clip.

    Returns:
        One float: 10 log10(data_range^2 / MSE), the MSE taken over the whole clip (all frames, pixels and
        channels); or (N,) float64 per frame (N = F, or B * F for a batch), inf where a frame is exact.
        The mean of per-frame values is usually higher than the whole-clip value; report which one you use.
    """
    x, y, default_range = _pair(a, b)
    data_range = default_range if data_range is None else float(data_range)
    if per_frame:
        mse = ((x - y) ** 2).mean(dim=(1, 2, 3)).numpy()                # (N,)
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(data_range**2 / mse)
    mse = float(((x - y) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    """(size,) float64 Gaussian taps summing to 1."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a, b, data_range: float | None = None, *, win_size: int = 11, sigma: float = 1.5,
         per_frame: bool = False) -> float | np.ndarray:
    """Structural similarity of two clips: per-frame Gaussian-window SSIM, averaged (1 for identical clips).

    Args:
        a, b: uint8 (F, H, W, 3) frames, or float (C, F, H, W) / (B, C, F, H, W) clips; same shape.
        data_range: max minus min of the value range (default: 255 for uint8, 2 for [-1, 1] floats).
        win_size: Gaussian window side (odd; frames must be at least this large). sigma: its std in pixels.
        per_frame: return (N,) per-frame values instead of their mean.

    Returns:
        Mean SSIM over frames (float), or (N,) float64 per frame.
    """
    x, y, default_range = _pair(a, b)
    data_range = default_range if data_range is None else float(data_range)
    n, c, h, w = x.shape
    if win_size % 2 == 0 or win_size < 3 or h < win_size or w < win_size:
        raise ValueError(f"ssim needs an odd win_size >= 3 no larger than the frames; got win_size={win_size} for "
                         f"{h}x{w} frames. Pass a smaller odd win_size (e.g. 7) for tiny frames")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    g = _gaussian_window(win_size, sigma)
    kernel = (g[:, None] * g[None, :]).expand(5 * c, 1, win_size, win_size)  # separable 2-D Gaussian per map

    # Local weighted moments of x, y, x^2, y^2, xy in one grouped 'valid' convolution.
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)                   # (N, 5C, H, W)
    m = F.conv2d(maps, kernel, groups=5 * c)                               # (N, 5C, H-win+1, W-win+1)
    mx, my, mxx, myy, mxy = m.chunk(5, dim=1)                              # each (N, C, h', w')
    vx, vy, cov = mxx - mx * mx, myy - my * my, mxy - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    frames = s.mean(dim=(1, 2, 3)).numpy()                                 # (N,)
    return frames if per_frame else float(frames.mean())
