"""Peer video U-Nets behind stillmotion's backbone contract `net(x, noise_level, cond) -> (B, C, F, H, W)`.

The peers are the optional `bench` extras (`pip install -e ".[bench]"`, see pyproject.toml); none of their code
is copied here, they are imported and called through their public constructors:

    diffusers      diffusers.UNet3DConditionModel (ModelScope text-to-video U-Net), cross-attention on text tokens
    vdm            video-diffusion-pytorch Unet3D (Ho et al. 2022 re-implementation), pooled text vector as `cond`
    make-a-video   make-a-video-pytorch SpaceTimeUnet (Singer et al. 2022 re-implementation); it has no text
                   input, so the adapter adds a linear map of the pooled prompt to its timestep embedding

Each is sized to about stillmotion's "cpu" preset (3.69M parameters) for 3 x 16 x 32 x 32 clips; `PEER_KWARGS`
holds the constructor arguments. The noise level reaches every peer as the timestep `1000 * noise_level`, the
scale stillmotion's own sinusoidal embedding uses (layers.NOISE_EMBED_SCALE), so all nets see the same input.

    net = build("diffusers")                       # a PeerNet, or the stillmotion preset for "stillmotion"
    out = net(x, noise_level, Cond(text=..., text_mask=...))
"""

from __future__ import annotations

import contextlib
import sys
import types

import torch
from torch import Tensor, nn

from stillmotion.cond import Cond
from stillmotion.models.layers import NOISE_EMBED_SCALE
from stillmotion.models.registry import build_unet

MODELS = ("stillmotion", "diffusers", "vdm", "make-a-video")
TEXT_DIM = 384  # MiniLM-L6 token size, what stillmotion's shipped model reads

PEER_KWARGS: dict[str, dict] = {
    # 4 levels (32 -> 4), one resnet + transformer per level as stillmotion's preset has; 2 heads everywhere
    # (diffusers' `attention_head_dim` is the head *count*, and one int for all levels: see its docstring).
    "diffusers": dict(in_channels=3, out_channels=3, block_out_channels=(16, 32, 64, 96), layers_per_block=1,
                      norm_num_groups=8, cross_attention_dim=TEXT_DIM, attention_head_dim=2),
    # the library's defaults (8 heads of 32, sparse linear spatial attention) at base width 16
    "vdm": dict(dim=16, cond_dim=TEXT_DIM, dim_mults=(1, 2, 4, 8), attn_heads=8, attn_dim_head=32),
    # the library's defaults at base width 16, 2 heads of 32
    "make-a-video": dict(dim=16, dim_mult=(1, 2, 4, 8), attn_heads=2, attn_dim_head=32),
}
PIP_NAMES = {"diffusers": "diffusers", "vdm": "video-diffusion-pytorch", "make-a-video": "make-a-video-pytorch"}


@contextlib.contextmanager
def _torchvision_stub():
    """video-diffusion-pytorch imports torchvision at module load for its data pipeline only (GIF loading,
    `T.ToTensor()` as a default argument); the U-Net never touches it, and torchvision wheels pin one torch.
    A throwaway module stands in during the import and is removed after, so diffusers / transformers, which
    probe for torchvision, do not see it."""
    had = "torchvision" in sys.modules
    if not had:
        stub = types.ModuleType("torchvision")
        stub.transforms = types.SimpleNamespace(ToTensor=lambda: None)
        stub.utils = types.SimpleNamespace()
        sys.modules["torchvision"] = stub
    try:
        yield
    finally:
        if not had:
            del sys.modules["torchvision"]


def _import(name: str):
    try:
        if name == "diffusers":
            from diffusers import UNet3DConditionModel
            return UNet3DConditionModel
        if name == "vdm":
            with _torchvision_stub():
                from video_diffusion_pytorch.video_diffusion_pytorch import Unet3D
            return Unet3D
        if name == "make-a-video":
            from make_a_video_pytorch import SpaceTimeUnet
            return SpaceTimeUnet
    except ImportError as e:
        raise ImportError(f"peer '{name}' needs `pip install --no-deps {PIP_NAMES[name]}` (or the bench extras: "
                          f"pip install -e '.[bench]'); import failed with: {e}") from e
    raise KeyError(f"unknown peer '{name}'; peers are {MODELS[1:]}")


def masked_mean(text: Tensor, mask: Tensor) -> Tensor:
    """(B, L, D) tokens, (B, L) bool -> (B, D) mean of the real tokens (0 for an all-padding row)."""
    m = mask.to(text.dtype)[..., None]  # (B, L, 1)
    return (text * m).sum(1) / m.sum(1).clamp(min=1)


class _TimestepPlusText(nn.Module):
    """Wraps make-a-video's `to_timestep_cond`: its output plus a linear map of the pooled prompt, which the
    adapter sets in `pooled` right before each call (the library's forward has no text argument)."""

    def __init__(self, timestep_cond: nn.Module, text_dim: int, cond_dim: int):
        super().__init__()
        self.timestep_cond = timestep_cond
        self.text = nn.Linear(text_dim, cond_dim)
        nn.init.zeros_(self.text.weight)
        nn.init.zeros_(self.text.bias)
        self.pooled: Tensor | None = None

    def forward(self, t: Tensor) -> Tensor:
        out = self.timestep_cond(t)  # (B, cond_dim)
        return out if self.pooled is None else out + self.text(self.pooled)


class PeerConfig:
    """What a checkpoint's config.json records about a peer (stillmotion's loop calls `config.to_dict()`)."""

    def __init__(self, name: str, text_dim: int):
        self.name, self.text_dim = name, text_dim

    def to_dict(self) -> dict:
        kwargs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in PEER_KWARGS[self.name].items()}
        return {"arch": f"peer:{self.name}", "package": PIP_NAMES[self.name], "kwargs": kwargs,
                "text_dim": self.text_dim}


class PeerNet(nn.Module):
    """A peer U-Net as `net(x, noise_level, cond)`: x (B, 3, F, H, W), noise_level (B,) = log(sigma)/4,
    cond a `Cond` with text (B, L, D) and text_mask (B, L). Known frames are not supported (text-to-video only)."""

    def __init__(self, name: str, text_dim: int = TEXT_DIM):
        super().__init__()
        if text_dim != TEXT_DIM:
            raise ValueError(f"peers are configured for {TEXT_DIM}-d text tokens (MiniLM); got text_dim={text_dim}")
        self.name = name
        self.config = PeerConfig(name, text_dim)
        self.net = _import(name)(**PEER_KWARGS[name])
        if name == "make-a-video":
            cond_dim = self.net.to_timestep_cond[1].out_features
            self.net.to_timestep_cond = _TimestepPlusText(self.net.to_timestep_cond, text_dim, cond_dim)

    def forward(self, x: Tensor, noise_level: Tensor, cond: Cond | None = None) -> Tensor:
        b = x.shape[0]
        if cond is not None and cond.frames is not None:
            raise ValueError(f"peer '{self.name}': known frames are not supported; benchmarks are text-to-video")
        t = torch.as_tensor(noise_level, dtype=x.dtype, device=x.device).expand(b) * NOISE_EMBED_SCALE  # (B,)
        text = mask = None
        if cond is not None and cond.text is not None:
            mask = cond.text_mask.bool() if cond.text_mask is not None else \
                torch.ones(cond.text.shape[:2], dtype=torch.bool, device=x.device)  # (B, L)
            text = torch.where(mask[..., None], cond.text.to(x.dtype), 0.0)  # (B, L, D), padding zeroed
        if self.name == "diffusers":
            if text is None:
                text = x.new_zeros(b, 1, TEXT_DIM)
            # no encoder mask in UNet3DConditionModel (its attention_mask is not the text mask): padding is 0
            return self.net(x, t, encoder_hidden_states=text).sample  # (B, 3, F, H, W)
        pooled = masked_mean(text, mask) if text is not None else x.new_zeros(b, TEXT_DIM)  # (B, D)
        if self.name == "vdm":
            return self.net(x, t, cond=pooled)  # (B, 3, F, H, W)
        self.net.to_timestep_cond.pooled = pooled
        try:
            return self.net(x, t)  # (B, 3, F, H, W)
        finally:
            self.net.to_timestep_cond.pooled = None

    def state_dict(self, *args, **kwargs):
        # video-diffusion-pytorch shares one RotaryEmbedding between its attention layers; safetensors refuses
        # tensors that share storage, so the duplicates are written as copies (loading ties them again).
        state = super().state_dict(*args, **kwargs)
        seen: set[int] = set()
        for k, v in state.items():
            ptr = v.untyped_storage().data_ptr()
            if ptr in seen:
                state[k] = v.clone()
            seen.add(ptr)
        return state


def build(name: str, text_dim: int = TEXT_DIM) -> nn.Module:
    """stillmotion's "cpu" preset or a peer, all as `net(x, noise_level, cond)`."""
    if name == "stillmotion":
        return build_unet("cpu", text_dim=text_dim)
    return PeerNet(name, text_dim)


def example(batch: int, frames: int = 16, size: int = 32, text_len: int = 16, seed: int = 0):
    """A seeded input: x (B, 3, F, H, W), noise_level (B,), Cond with (B, L, 384) text, and a target like x."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, frames, size, size, generator=g)
    noise_level = torch.randn(batch, generator=g) * 0.5
    text = torch.randn(batch, text_len, TEXT_DIM, generator=g)
    mask = torch.arange(text_len)[None] < torch.randint(4, text_len + 1, (batch, 1), generator=g)  # (B, L)
    target = torch.randn(batch, 3, frames, size, size, generator=g)
    return x, noise_level, Cond(text=text, text_mask=mask), target
