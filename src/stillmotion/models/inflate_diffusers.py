"""Inflate a `diffusers` UNet2DConditionModel (a Stable-Diffusion-class image U-Net on disk) into a video model.

The image U-Net runs on every frame, with frames folded into the batch ((B*F, C, H, W)), and a temporal
attention layer (stillmotion's rotary `TemporalAttention`) follows every ResNet block of its down, mid and up
blocks, as AnimateDiff's motion modules do (Guo et al. 2023) and as `SpaceTimeUNet.inflate` does for
stillmotion's own image models. Every temporal layer is a zero-initialised residual, so at step 0 the video
model is exactly the image model applied per frame (tests/test_inflate_diffusers.py checks it). The image
weights stay as they are: fine-tune all of it, or freeze `.unet` and train only `.temporal`.

The wrapper keeps stillmotion's model contract, `forward(x, noise_level, cond)` with noise_level = log(sigma)/4,
so the same Denoiser, samplers and guidance drive it. A diffusers U-Net expects a discrete timestep instead: the
wrapper maps sigma to the (fractional) timestep of the backbone's own training schedule, given as
`timestep_sigmas` (sigma of timestep t = 0 .. T-1; `diffusion.schedules` computes them from a scheduler
config). Use it with the "eps" parameterization, which feeds the VP-scaled input a Stable-Diffusion U-Net saw.

    unet2d = load_diffusers_unet("path/to/unet")               # a local folder, nothing is downloaded
    video_net = InflatedUNet2D(unet2d, timestep_sigmas)        # (B, C, F, H, W) in and out
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from stillmotion.cond import Cond
from stillmotion.models.layers import TemporalAttention


def load_diffusers_unet(path: str | Path):
    """A UNet2DConditionModel from a local folder (its config.json + weights, or a pipeline folder's unet/)."""
    try:
        from diffusers import UNet2DConditionModel
    except ImportError as e:
        raise ImportError("inflating a diffusers U-Net needs the diffusers package: pip install diffusers") from e
    path = Path(path)
    if (path / "unet" / "config.json").is_file():  # a whole pipeline folder
        path = path / "unet"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"load_diffusers_unet: no config.json in '{path}'; give the folder saved by "
                                "UNet2DConditionModel.save_pretrained (or a pipeline folder with unet/ inside)")
    return UNet2DConditionModel.from_pretrained(path)


class InflatedUNet2D(nn.Module):
    """A diffusers 2D U-Net per frame + zero-initialised temporal attention after each of its ResNet blocks.

    Args:
        unet: a diffusers UNet2DConditionModel (in_channels = the video's channels).
        timestep_sigmas: (T,) increasing noise level of each training timestep of the backbone.
        head_dim: channels per temporal-attention head.
    """

    def __init__(self, unet: nn.Module, timestep_sigmas: Tensor, head_dim: int = 32):
        super().__init__()
        from diffusers.models.resnet import ResnetBlock2D

        self.unet = unet
        self.register_buffer("log_sigmas", torch.as_tensor(timestep_sigmas, dtype=torch.float64).log())
        if not bool((self.log_sigmas.diff() > 0).all()):
            raise ValueError("InflatedUNet2D: timestep_sigmas must increase with the timestep")
        blocks = [(name, m) for name, m in unet.named_modules() if isinstance(m, ResnetBlock2D)]
        self.temporal = nn.ModuleDict()
        self._frames = 1
        for name, block in blocks:
            key = name.replace(".", "_")
            self.temporal[key] = TemporalAttention(block.out_channels, min(head_dim, block.out_channels))
            self.temporal[key].zero_init()
            # a partial of a bound method, not a closure: copy.deepcopy (EMA) then hooks the copy's own layers
            block.register_forward_hook(functools.partial(self._temporal_hook, key))

    def _temporal_hook(self, key: str, module: nn.Module, inputs, output: Tensor) -> Tensor:
        """After a ResNet block: output (B*F, C, H, W) -> the same plus temporal attention across frames."""
        return self.temporal[key](output, self._frames) if self._frames > 1 else output

    def timesteps(self, noise_level: Tensor) -> Tensor:
        """noise_level = log(sigma)/4 -> the backbone's fractional timestep with that sigma, (N,) float32."""
        log_sigma = (4 * noise_level.double()).clamp(self.log_sigmas[0], self.log_sigmas[-1])
        i = torch.searchsorted(self.log_sigmas, log_sigma).clamp(1, len(self.log_sigmas) - 1)
        lo, hi = self.log_sigmas[i - 1], self.log_sigmas[i]
        return (i - 1 + (log_sigma - lo) / (hi - lo)).float()

    def forward(self, x: Tensor, noise_level: Tensor, cond: Cond | None = None) -> Tensor:
        """x: (B, C, F, H, W); noise_level: (B,) log(sigma)/4; cond.text (B, L, D). Returns (B, C_out, F, H, W)."""
        b, _, frames = x.shape[:3]
        cond = cond if cond is not None else Cond()
        if cond.frames is not None:
            raise ValueError("InflatedUNet2D: known frames are not supported (an image U-Net has no input for "
                             "them); use SpaceTimeUNet for image-to-video, prediction and interpolation")
        if cond.text is None:
            raise ValueError("InflatedUNet2D: a UNet2DConditionModel needs text embeddings (cond.text)")
        noise_level = torch.as_tensor(noise_level, device=x.device).expand(b)
        t = repeat(self.timesteps(noise_level), "b -> (b f)", f=frames)  # (B*F,)
        text = repeat(cond.text.to(x.dtype), "b l d -> (b f) l d", f=frames)  # (B*F, L, D)
        mask = None if cond.text_mask is None else repeat(cond.text_mask, "b l -> (b f) l", f=frames)
        self._frames = frames
        try:
            out = self.unet(rearrange(x, "b c f h w -> (b f) c h w"), t, encoder_hidden_states=text,
                            encoder_attention_mask=mask).sample  # (B*F, C_out, H, W)
        finally:
            self._frames = 1
        return rearrange(out, "(b f) c h w -> b c f h w", b=b)
