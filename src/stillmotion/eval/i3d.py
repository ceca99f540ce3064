"""Standard FVD features from a local I3D TorchScript file (nothing is downloaded).

FVD (Unterthiner et al. 2018) embeds clips with an I3D network trained on Kinetics-400. The PyTorch port most
papers use is the TorchScript file `i3d_torchscript.pt` of the StyleGAN-V code (github.com/universome/stylegan-v,
src/metrics/frechet_video_distance.py; also used by DIGAN and github.com/universome/fvd-comparison, which shows
it matches the original TensorFlow FVD). Get the file yourself from the link in that code and pass its path
(`stillmotion evaluate --i3d PATH`).

Preprocessing as that code does it: every frame resized (bilinear) so its shorter side is 224, centre-cropped to
224x224, values in [-1, 1], clips (B, 3, F, 224, 224); the detector is called with
`rescale=False, resize=False, return_features=True` and returns (B, 400) features (the logits layer, before the
softmax). Our 32 px clips are upsampled 7x and our clip counts are small, so even these numbers are not
comparable with the literature; they are here so that a model trained on real video can be measured the
standard way.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

I3D_SOURCE = ("the i3d_torchscript.pt of the StyleGAN-V / DIGAN FVD code (the detector_url in "
              "github.com/universome/stylegan-v src/metrics/frechet_video_distance.py); download it yourself")
RESOLUTION = 224


def load_i3d(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Load the I3D TorchScript file (CPU, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no I3D TorchScript file at '{path}'; --i3d expects {I3D_SOURCE}")
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as e:
        raise ValueError(f"'{path}' is not a TorchScript file ({str(e).splitlines()[0]}); --i3d expects "
                         f"{I3D_SOURCE}") from e


def i3d_preprocess(videos: Tensor, resolution: int = RESOLUTION) -> Tensor:
    """(B, 3, F, H, W) in [-1, 1] -> (B, 3, F, 224, 224) in [-1, 1]: shorter side resized to 224, centre crop."""
    if videos.ndim != 5 or videos.shape[1] != 3:
        raise ValueError(f"I3D expects videos (B, 3, F, H, W) in [-1, 1]; got {tuple(videos.shape)}")
    b, c, f, h, w = videos.shape
    scale = resolution / min(h, w)
    nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    frames = videos.float().transpose(1, 2).reshape(b * f, c, h, w)                      # (B*F, 3, H, W)
    frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", align_corners=False)
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    frames = frames[:, :, top:top + resolution, left:left + resolution]                  # centre crop
    return frames.reshape(b, f, c, resolution, resolution).transpose(1, 2).clamp(-1, 1).contiguous()


@torch.no_grad()
def i3d_features(detector, videos: Tensor, *, batch: int = 8) -> Tensor:
    """I3D features (N, D) (D = 400 for the standard file) of clips (N, 3, F, H, W) in [-1, 1]."""
    out = []
    for i in range(0, len(videos), batch):
        x = i3d_preprocess(videos[i:i + batch])
        out.append(detector(x, rescale=False, resize=False, return_features=True).float().cpu())
    return torch.cat(out)
