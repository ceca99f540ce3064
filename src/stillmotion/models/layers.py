"""Building blocks of the space-time U-Net.

Layout convention: spatial layers see activations as `(B*F, C, H, W)` (frames folded into the batch),
so a 2D conv, a GroupNorm or a spatial attention never mixes frames or batch elements. Temporal layers
receive the same tensor plus the frame count `frames` and unfold it only where they must.

Designs credited (rewritten, no code copied): ADM residual blocks and zero-init (Dhariwal & Nichol 2021),
adaLN/FiLM modulation (DiT, Peebles & Xie 2023), factorized space-time attention and temporal
convolutions (VDM, Ho et al. 2022; Make-A-Video, Singer et al. 2022), rotary position encoding
(RoFormer, Su et al. 2021).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# noise_level is c_noise = log(sigma)/4, roughly [-1.6, 1.1] for EDM sigmas; scaling by 1000 spreads it
# over the range ADM's sinusoidal embedding was designed for (integer timesteps 0..1000).
NOISE_EMBED_SCALE = 1000.0
ROPE_BASE = 10000.0
# CUDA's flash / memory-efficient SDPA kernels fail with "invalid configuration argument" when the batch
# dimension reaches 2^16 (pytorch/pytorch#146704); temporal attention has B*H*W sequences, so chunk it.
MAX_ATTN_BATCH = 2**15


def norm_groups(channels: int) -> int:
    """Largest GroupNorm group count <= 32 that leaves at least 4 channels per group (else 1)."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 4:
            return g
    return 1


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(norm_groups(channels), channels, eps=1e-6)


def noise_embedding(noise_level: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of the noise level (Transformer / ADM positional embedding).

    Args:
        noise_level: (N,) float, c_noise = log(sigma) / 4.
        dim: even embedding size.

    Returns:
        (N, dim) float32: [cos(x * w_k), sin(x * w_k)] with w_k = max_period^(-k / (dim/2)).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=noise_level.device) / half)
    args = noise_level.float()[:, None] * NOISE_EMBED_SCALE * freqs[None]  # (N, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # (N, dim)


def apply_rope(x: Tensor, positions: Tensor | None = None) -> Tensor:
    """Rotary position encoding (RoFormer, Su et al. 2021, eq. 34), along one or several axes.

    Scores q.k then depend only on position offsets, so any number of frames works at sampling time. With A
    axes (frame, row, column for space-time attention), the D/2 rotation pairs are split into A equal groups,
    one per axis (as video transformers do); leftover pairs are not rotated.

    Args:
        x: (..., N, D) queries or keys, D even.
        positions: (N, A) coordinates of the N tokens, or (..., N, A) broadcastable to x's leading axes (each
            sequence its own, e.g. a moving frame of reference); None means one axis with positions 0..N-1.
            Coordinates may be fractional.

    Returns:
        (..., N, D): pairs (x_i, x_{i+D/2}) rotated by angle pos[axis(i)] * base^(-2j/D_axis).
    """
    n, d = x.shape[-2], x.shape[-1]
    half = d // 2
    if positions is None:
        positions = torch.arange(n, device=x.device, dtype=torch.float32)[:, None]  # (N, 1)
    axes = positions.shape[-1]
    per_axis = half // axes
    if per_axis == 0:
        raise ValueError(f"apply_rope: head size {d} is too small for {axes} position axes; use larger heads")
    freqs = ROPE_BASE ** (-torch.arange(per_axis, device=x.device, dtype=torch.float32) / per_axis)  # (P,)
    angles = (positions.to(x.device, torch.float32)[..., None] * freqs).flatten(-2)  # (..., N, A*P)
    angles = F.pad(angles, (0, half - axes * per_axis))  # (..., N, D/2): leftover pairs keep angle 0
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class ResBlock(nn.Module):
    """ADM residual block applied per frame, with FiLM/adaLN noise-level conditioning.

    h -> GN -> SiLU -> conv3x3 -> GN * (1 + scale) + shift -> SiLU -> dropout -> conv3x3 (zero-init) + skip(h)
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        """h: (B*F, C_in, H, W); emb: (B*F, E) already passed through SiLU. Returns (B*F, C_out, H, W)."""
        y = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)  # 2 x (B*F, C_out, 1, 1)
        y = self.norm2(y) * (1 + scale) + shift
        y = self.conv2(self.dropout(F.silu(y)))
        return self.skip(h) + y

    def zero_init(self) -> None:
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)


class TemporalConv(nn.Module):
    """Residual 3x1x1 convolution along frames (zero padding at both ends), zero-initialised."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, h: Tensor, frames: int) -> Tensor:
        """h: (B*F, C, H, W) -> (B*F, C, H, W)."""
        height = h.shape[-2]
        # One explicit copy into (B, C, F, H*W): oneDNN's Conv3d backward on the strided view was ~100x slower
        # on CPU (measured), and concatenating shifted frames for a 1x1 conv ~10x. A 3x1x1 kernel over
        # (F, H, W) is a 3x1 kernel over (F, H*W), so the Conv3d's weight (C, C, 3, 1, 1) runs as a 2D conv:
        # CPU torch has no oneDNN path for this Conv3d (slow_conv3d, ~11% of a cpu-preset training step in
        # bench/backbones.py --profile); the 2D conv's forward + backward was 2.5x faster at 24 channels x 16x16,
        # 1 thread (docs/benchmarks.md), with the same result up to fp32 summation order.
        y = rearrange(F.silu(self.norm(h)), "(b f) c h w -> b c f (h w)", f=frames).contiguous()
        y = F.conv2d(y, self.conv.weight.squeeze(-1), self.conv.bias, padding=(1, 0))  # mixes frames f-1, f, f+1
        return h + rearrange(y, "b c f (h w) -> (b f) c h w", h=height)  # (B*F, C, H, W)

    def zero_init(self) -> None:
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the H*W positions of each frame separately."""

    def __init__(self, channels: int, head_dim: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, h: Tensor) -> Tensor:
        """h: (B*F, C, H, W) -> (B*F, C, H, W)."""
        height = h.shape[-2]
        qkv = self.qkv(self.norm(h))  # (B*F, 3C, H, W)
        q, k, v = rearrange(qkv, "n (three heads d) h w -> three n heads (h w) d",
                            three=3, heads=self.heads)  # 3 x (B*F, heads, H*W, d)
        y = F.scaled_dot_product_attention(q, k, v)  # (B*F, heads, H*W, d)
        y = rearrange(y, "n heads (h w) d -> n (heads d) h w", h=height)  # (B*F, C, H, W)
        return h + self.out(y)

    def zero_init(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)


class CrossAttention(nn.Module):
    """Every pixel of every frame attends to the text tokens of its own clip.

    Queries of all frames of clip b are one sequence of length F*H*W against clip b's L tokens, so the
    text keys/values are computed once per clip, never repeated per frame. Padding tokens are masked out
    through `attn_mask`; the context always starts with a learned null token, so a row with no valid
    text token still has one key to attend to (no NaN) and "no text" is a learned state.
    """

    def __init__(self, channels: int, context_dim: int, head_dim: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.kv = nn.Linear(context_dim, 2 * channels)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, h: Tensor, context: Tensor, mask: Tensor, frames: int) -> Tensor:
        """h: (B*F, C, H, W); context: (B, L, Dc); mask: (B, L) bool, True = attend. -> (B*F, C, H, W)."""
        height, width = h.shape[-2:]
        q = rearrange(self.q(self.norm(h)), "(b f) (heads d) h w -> b heads (f h w) d",
                      f=frames, heads=self.heads)  # (B, heads, F*H*W, d)
        k, v = rearrange(self.kv(context), "b l (two heads d) -> two b heads l d",
                         two=2, heads=self.heads)  # 2 x (B, heads, L, d)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, heads, FHW, d)
        y = rearrange(y, "b heads (f h w) d -> (b f) (heads d) h w",
                      f=frames, h=height, w=width)  # (B*F, C, H, W)
        return h + self.out(y)

    def zero_init(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)


class TemporalAttention(nn.Module):
    """Multi-head self-attention over frames, separately at every pixel, with RoPE on queries and keys.

    Projections are 1x1 convs applied in the (B*F, C, H, W) layout; only q, k, v are rearranged to
    (B*H*W, heads, F, d). Output projection zero-initialised (a no-op residual at init).
    """

    def __init__(self, channels: int, head_dim: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if (channels // self.heads) % 2:
            raise ValueError(f"TemporalAttention: head size {channels // self.heads} must be even for RoPE; "
                             f"choose channels ({channels}) and head_dim ({head_dim}) accordingly")
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, h: Tensor, frames: int, emb: Tensor | None = None, motion: Tensor | None = None) -> Tensor:
        """h: (B*F, C, H, W) -> (B*F, C, H, W). `emb`, `motion` are unused (SpaceTimeAttention's signature)."""
        height, width = h.shape[-2:]
        qkv = self.qkv(self.norm(h))  # (B*F, 3C, H, W)
        q, k, v = rearrange(qkv, "(b f) (three heads d) h w -> three (b h w) heads f d",
                            f=frames, three=3, heads=self.heads)  # 3 x (B*H*W, heads, F, d)
        q, k = apply_rope(q), apply_rope(k)
        y = torch.cat([F.scaled_dot_product_attention(q[i:i + MAX_ATTN_BATCH], k[i:i + MAX_ATTN_BATCH],
                                                      v[i:i + MAX_ATTN_BATCH])
                       for i in range(0, q.shape[0], MAX_ATTN_BATCH)])  # (B*H*W, heads, F, d)
        y = rearrange(y, "(b h w) heads f d -> (b f) (heads d) h w", h=height, w=width)  # (B*F, C, H, W)
        return h + self.out(y)

    def zero_init(self) -> None:
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)


class SpaceTimeAttention(TemporalAttention):
    """Full self-attention over all F x H x W positions of a clip, with 3-axis RoPE (frame, row, column).

    Per-pixel temporal attention cannot relate a pixel to a *different* pixel in another frame, yet motion is
    exactly that: "moving left" means the object at (f, x) was at (f - 1, x + v). With rotary positions on all
    three axes a query can prefer keys at a given (frame, row, column) offset, so at the coarse levels (a few
    hundred tokens per clip) the network can learn text-dependent displacement directly (as video DiTs do).
    The same parameters as `TemporalAttention` (so either loads the other's weights); only the token set differs.

    With `emb_dim` > 0 every head attends in a frame of reference that moves (Galilean RoPE): a velocity per clip
    and head, in cells per frame, read from the clip's conditioning embedding by a zero-initialised linear map,
    shifts each token's (row, column) by -velocity * frame before the rotary encoding. A head that attends to "the
    same place in the other frames" then attends along a straight track; where the prompt fixes the motion, the
    network only has to learn two numbers per head from it to look where the object was, instead of a rotary
    phase pattern that 3-axis RoPE cannot express (its scores add a function of the frame offset to one of the
    pixel offset, so no head can prefer a pixel offset that grows with the frame offset). Zero velocity is the
    static layer exactly. With `follow_hint`, a motion hint (`Cond.motion`, the clip's displacement) adds its own
    velocity to every head, scaled by a learned per-head gate that starts at 1 (where the clip says how it moves,
    the heads look along that track from the first step; a head that should stay put learns its gate down); with no
    hint it adds nothing. This is camera-motion conditioning in the attention's coordinates (cf. CameraCtrl's
    per-pixel Plücker maps, He et al. 2024), nothing written into the clip.

    Full attention costs F^2 in the number of frames. With `window` > 0 a clip longer than `window` frames is cut
    into windows of `window` frames that attend within themselves, so the cost grows linearly in F; with `shift`
    the cuts move by half a window (Video Swin, Liu et al. 2022), so layers alternating shifted and unshifted windows
    pass information across every cut. A clip of at most `window` frames is one window: full attention, unchanged.
    """

    def __init__(self, channels: int, head_dim: int, window: int = 0, shift: bool = False, emb_dim: int = 0,
                 follow_hint: bool = False):
        super().__init__(channels, head_dim)
        if (channels // self.heads) < 6:
            raise ValueError(f"SpaceTimeAttention: head size {channels // self.heads} is too small for 3-axis "
                             f"RoPE (needs >= 6); choose channels ({channels}) and head_dim ({head_dim})")
        if window < 0:
            raise ValueError(f"SpaceTimeAttention: window must be >= 0 frames (0 = the whole clip), got {window}")
        self.window, self.shift = window, shift
        self.velocity = nn.Linear(emb_dim, 2 * self.heads) if emb_dim else None  # emb -> (column, row) per head
        self.hint_gate = nn.Parameter(torch.ones(self.heads)) if follow_hint else None  # how much each head follows

    def zero_init(self) -> None:
        super().zero_init()
        if self.velocity is not None:
            nn.init.zeros_(self.velocity.weight)
            nn.init.zeros_(self.velocity.bias)

    def positions(self, frames: int, height: int, width: int, emb: Tensor | None,
                  motion: Tensor | None = None) -> Tensor:
        """Token coordinates (frame, row, column): (F*H*W, 3), or (B, heads, F*H*W, 3) in each head's moving frame
        of reference when the layer reads velocities (emb: (B*F, E), the conditioning of each frame; motion: (B, 3)
        hints [dx, dy, given] in canvas fractions over the clip)."""
        grid = torch.meshgrid(torch.arange(frames), torch.arange(height), torch.arange(width), indexing="ij")
        positions = torch.stack(grid, dim=-1).reshape(-1, 3).float()  # (F*H*W, 3)
        if self.velocity is None or emb is None:
            return positions
        per_clip = rearrange(emb, "(b f) e -> b f e", f=frames).mean(1)  # (B, E)
        vel = rearrange(self.velocity(per_clip).float(), "b (heads two) -> b heads 1 two", two=2)  # cells / frame
        if self.hint_gate is not None and motion is not None and frames > 1:
            cells = torch.tensor([width, height], dtype=torch.float32, device=vel.device) / (frames - 1)
            hinted = motion[:, :2].float() * motion[:, 2:3].float() * cells  # (B, 2) cells per frame
            vel = vel + self.hint_gate.float()[None, :, None, None] * hinted[:, None, None, :]
        shift = positions[:, :1].to(vel.device) * vel.flip(-1)  # (B, heads, F*H*W, 2): frame * (row, column) speed
        return torch.cat([positions[:, :1].to(vel.device).expand(*vel.shape[:2], -1, 1),
                          positions[:, 1:].to(vel.device) - shift], dim=-1)  # (B, heads, F*H*W, 3)

    def forward(self, h: Tensor, frames: int, emb: Tensor | None = None, motion: Tensor | None = None) -> Tensor:
        """h: (B*F, C, H, W), emb: (B*F, E) or None, motion: (B, 3) or None -> (B*F, C, H, W)."""
        height, width = h.shape[-2:]
        qkv = self.qkv(self.norm(h))  # (B*F, 3C, H, W)
        q, k, v = rearrange(qkv, "(b f) (three heads d) h w -> three b heads (f h w) d",
                            f=frames, three=3, heads=self.heads)  # 3 x (B, heads, F*H*W, d)
        positions = self.positions(frames, height, width, emb, motion)
        q, k = apply_rope(q, positions), apply_rope(k, positions)
        pixels = height * width
        parts = [F.scaled_dot_product_attention(q[:, :, a * pixels:b * pixels], k[:, :, a * pixels:b * pixels],
                                                v[:, :, a * pixels:b * pixels])
                 for a, b in frame_windows(frames, self.window, self.shift)]  # each (B, heads, frames in it*H*W, d)
        y = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)  # (B, heads, F*H*W, d)
        y = rearrange(y, "b heads (f h w) d -> (b f) (heads d) h w", f=frames, h=height, w=width)  # (B*F, C, H, W)
        return h + self.out(y)


def frame_windows(frames: int, window: int, shift: bool = False) -> list[tuple[int, int]]:
    """Split frames 0..F-1 into consecutive [start, end) windows of `window` frames (0: one window).

    Cuts fall at multiples of `window`, or, with `shift`, half a window earlier; the first and last windows may be
    shorter. E.g. F = 40, window 16: [(0, 16), (16, 32), (32, 40)]; shifted: [(0, 8), (8, 24), (24, 40)].
    """
    if window <= 0 or frames <= window:
        return [(0, frames)]
    first = window // 2 if shift else window
    cuts = [0, *range(first, frames, window), frames]
    return list(zip(cuts[:-1], cuts[1:]))


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 conv, per frame."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)

    def forward(self, h: Tensor) -> Tensor:
        return self.conv(h)  # (B*F, C_in, H, W) -> (B*F, C_out, H/2, W/2)


class Upsample(nn.Module):
    """Double H and W, per frame: a 1x1 conv to the new width at low resolution, then nearest-neighbour
    upsampling. The 3x3 conv that ADM adds after upsampling (`conv_resample`) is left out: the next
    block's first 3x3 conv already smooths, and the saving is one full 3x3 conv at the higher resolution."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, h: Tensor) -> Tensor:
        return F.interpolate(self.conv(h), scale_factor=2.0, mode="nearest")  # (B*F, C_out, 2H, 2W)
