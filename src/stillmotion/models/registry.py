"""Named U-Net sizes, and how to count their parameters and FLOPs.

    net = build_unet("cpu")                       # a preset
    net = build_unet("cpu", dropout=0.1)          # a preset with fields overridden
    net = build_unet(UNetConfig(channels=(16,)))  # an explicit config

`python -m stillmotion.models.registry` prints every preset's parameters and GFLOP per 16x32x32 clip.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from torch import nn
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from stillmotion.cond import Cond
from stillmotion.models.unet import SpaceTimeUNet, UNetConfig

UNET_PRESETS: dict[str, UNetConfig] = {
    # Unit tests: well under 100k parameters, milliseconds per call.
    "tiny": UNetConfig(channels=(8, 16), attn_levels=(1,), temporal_attn_levels=(1,), spacetime_attn_levels=(1,),
                       head_dim=8, emb_dim=32),
    # Trains on 2 CPU cores at 16 frames x 32x32. The U-Net runs on 2x2 patches (16x16 for a 32x32 clip):
    # thin full-resolution convolutions were a third of the step time for little capacity (measured:
    # 1.17 s vs 1.78 s per batch-16 training step, same parameter count). Width grows towards 4x4 and 2x2,
    # where parameters are cheap; attention and temporal attention at 8x8 and below.
    # Coordinate channels and text whitening: see UNetConfig (both measured to matter for motion direction).
    "cpu": UNetConfig(channels=(24, 48, 96, 128), attn_levels=(1, 2, 3), temporal_attn_levels=(1, 2, 3),
                      spacetime_attn_levels=(2, 3), head_dim=32, emb_dim=128, patch_size=2, coords=True,
                      text_whiten=True),
    "cpu-m": UNetConfig(channels=(16, 32, 64, 128, 192), blocks_per_level=(1, 1, 1, 2, 2),
                        attn_levels=(2, 3, 4), temporal_attn_levels=(2, 3, 4), head_dim=32, emb_dim=192),
    # GPU sizes (ADM-like widths) for 64x64 and up.
    "gpu-b": UNetConfig(channels=(128, 256, 384, 512), blocks_per_level=2, attn_levels=(2, 3),
                        temporal_attn_levels=(1, 2, 3), head_dim=64, emb_dim=512, dropout=0.1),
    "gpu-l": UNetConfig(channels=(192, 384, 576, 768), blocks_per_level=(2, 2, 3, 3), attn_levels=(1, 2, 3),
                        temporal_attn_levels=(0, 1, 2, 3), head_dim=64, emb_dim=768, dropout=0.1,
                        grad_checkpoint=True),
}


def unet_preset(name: str) -> UNetConfig:
    """A copy of the preset `name` (presets are shared); a ValueError that lists them for an unknown name."""
    if name not in UNET_PRESETS:
        raise ValueError(f"unknown U-Net preset '{name}'; presets are {', '.join(UNET_PRESETS)}")
    return replace(UNET_PRESETS[name])


def build_unet(name_or_config: str | UNetConfig, **overrides) -> SpaceTimeUNet:
    """Build a `SpaceTimeUNet` from a preset name or a config, with optional field overrides."""
    cfg = unet_preset(name_or_config) if isinstance(name_or_config, str) else name_or_config
    try:
        cfg = replace(cfg, **overrides)
    except TypeError as e:
        raise TypeError(f"build_unet: bad override ({e}); UNetConfig fields are "
                        f"{sorted(UNetConfig.__dataclass_fields__)}") from None
    return SpaceTimeUNet(cfg)


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def _example(model: SpaceTimeUNet, frames: int, size: int, batch: int, text_len: int):
    cfg = model.config
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, frames, size, size, generator=g).to(device)
    cond = None
    if cfg.text_dim:
        cond = Cond(text=torch.randn(batch, text_len, cfg.text_dim, generator=g).to(device),
                    text_mask=torch.ones(batch, text_len, dtype=torch.bool, device=device))
    return x, torch.zeros(batch, device=device), cond


def count_cpu_attention() -> None:
    """Teach FlopCounterMode the CPU flash-attention ops, with the formulas it uses for the CUDA ones.

    torch 2.13's counter knows `_scaled_dot_product_flash_attention` (CUDA) but not the `..._for_cpu` op that
    `F.scaled_dot_product_attention` dispatches to on the CPU, so there every SDPA call counted 0 FLOP (5 % of the
    cpu preset's training FLOP, more for longer clips). Called once on import; a torch that knows them is left as is.
    """
    aten = torch.ops.aten
    forward, backward = (getattr(aten, name, None) for name in ("_scaled_dot_product_flash_attention_for_cpu",
                                                                  "_scaled_dot_product_flash_attention_for_cpu_backward"))
    if forward is not None and forward not in flop_counter.flop_registry:
        @flop_counter.register_flop_formula(forward, get_raw=True)
        def _forward(query, key, value, *args, out_val=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query.shape, key.shape, value.shape)
    if backward is not None and backward not in flop_counter.flop_registry:
        @flop_counter.register_flop_formula(backward, get_raw=True)
        def _backward(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


count_cpu_attention()


@torch.no_grad()
def count_flops(model: SpaceTimeUNet, frames: int = 16, size: int = 32, batch: int = 1,
                text_len: int = 16) -> float:
    """Forward GFLOP per clip (a multiply-add counts 2), measured with torch's FlopCounterMode.

    Counts matmuls, convolutions and attention; norms and activations are not counted.
    """
    x, nl, cond = _example(model, frames, size, batch, text_len)
    with FlopCounterMode(display=False) as counter:
        model(x, nl, cond)
    return counter.get_total_flops() / 1e9 / batch


@torch.inference_mode()
def time_forward(model: SpaceTimeUNet, frames: int = 16, size: int = 32, batch: int = 8, repeats: int = 3,
                 text_len: int = 16) -> float:
    """Median forward wall time in milliseconds per clip (after one warm-up run)."""
    x, nl, cond = _example(model, frames, size, batch, text_len)
    model(x, nl, cond)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x, nl, cond)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1000 / batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Parameters, GFLOP and forward time of the U-Net presets.")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--time", nargs="*", default=["tiny", "cpu"],
                        help="presets whose forward time is measured (batch --batch)")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    print(f"{'preset':8s} {'params':>10s} {'GFLOP/clip':>11s} {'fwd ms/clip':>12s}   "
          f"(clip = {args.frames}x{args.size}x{args.size}, batch {args.batch} for timing, "
          f"{torch.get_num_threads()} threads)")
    for name in UNET_PRESETS:
        model = build_unet(name).eval()
        gflop = count_flops(model, args.frames, args.size)
        ms = f"{time_forward(model, args.frames, args.size, args.batch):.1f}" if name in args.time else "-"
        print(f"{name:8s} {count_params(model):>10,d} {gflop:>11.3f} {ms:>12s}")


if __name__ == "__main__":
    main()
