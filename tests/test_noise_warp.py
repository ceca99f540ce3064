"""Motion-warped noise: frames follow the motion, stay N(0, I), and training and sampling both use it."""

import pytest
import torch

from conftest import tiny_checkpoint
from stillmotion.diffusion.noise_warp import frame_shifts, warped_noise


def drift(noise, f):
    """(sx, sy) in -20..20 for which frame f of (C, F, H, W) noise is frame 0 moved by (sx, sy), where they overlap."""
    h, w = noise.shape[-2:]

    def err(sx, sy):
        a = noise[:, f, max(sy, 0):h + min(sy, 0), max(sx, 0):w + min(sx, 0)]
        b = noise[:, 0, max(-sy, 0):h + min(-sy, 0), max(-sx, 0):w + min(-sx, 0)]
        return (a - b).abs().mean().item()
    return min(((sx, sy) for sx in range(-20, 21) for sy in range(-20, 21)), key=lambda s: err(*s))


def test_fully_warped_frames_are_frame_zero_moved():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 3, 16, 32, 32, generator=g)
    out = warped_noise(noise, torch.tensor([[-0.25, 0.0], [0.25, 0.5]]), amount=1.0, generator=g)
    assert drift(out[0], 15) == (-8, 0) and drift(out[1], 15) == (8, 16)  # a quarter of 32 px left; right 8, down 16
    assert frame_shifts(torch.tensor([[-0.25, 0.0]]), 16, 32, 32)[0, 8].tolist() == [-4, 0]  # u = 8/15 of 8 px
    assert drift(out[0], 8) == (-4, 0)
    assert torch.equal(out[0, :, 15, :, :24], out[0, :, 0, :, 8:])  # nothing wraps: the overlap is exact
    assert not torch.allclose(out[0, :, 15, :, 24:], out[0, :, 0, :, :8])
    still = warped_noise(noise, torch.zeros(2, 2), amount=1.0, generator=g)
    assert torch.equal(still, still[:, :, :1].expand_as(still))  # no motion: the same noise in every frame
    again = warped_noise(noise, torch.zeros(2, 2), amount=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, warped_noise(noise, torch.zeros(2, 2), generator=torch.Generator().manual_seed(5)))


def test_partial_warp_keeps_unit_variance_and_shares_the_asked_fraction():
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(64, 1, 4, 32, 32, generator=g)
    a = 0.8
    out = warped_noise(noise, torch.full((64, 2), 0.25), amount=a, generator=g)
    assert out.std().item() == pytest.approx(1.0, abs=0.02)
    late, first = out[:, 0, 3, 8:, 8:], out[:, 0, 0, :-8, :-8]  # frame 3 (moved by 8, 8) over frame 0
    corr = (late * first).mean() / (late.std() * first.std())
    assert corr.item() == pytest.approx(a * a, abs=0.03)
    assert torch.equal(warped_noise(noise, torch.full((64, 2), 0.25), amount=0.0), noise)
    assert torch.equal(warped_noise(noise[:, :, :1], torch.ones(64, 2)), noise[:, :, :1])  # an image: nothing moves


def test_bad_amount_or_shape_is_a_clear_error():
    noise = torch.randn(2, 3, 4, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        warped_noise(noise, torch.zeros(2, 2), amount=1.5)
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        warped_noise(noise, torch.zeros(2, 3))


def test_training_noise_follows_the_clip_and_sampling_follows_the_hint(tmp_path):
    from stillmotion.models.registry import build_unet
    from stillmotion.models.text import TextEncoder
    from stillmotion.pipelines.text_to_video import TextToVideo
    from stillmotion.train.batches import make_batch, make_source
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import checkpoint_config

    cfg = make_config("shapes-tiny", {"frames": 8, "size": 32, "p_two": 0.0, "noise_warp": 1.0,
                                      "world_options": {"motions": ["left"], "background": "black"}})
    text = TextEncoder(cfg.text_encoder)
    batch = make_batch(cfg, make_source(cfg), text, [0, 1], "cpu")
    for noise in batch.noise:
        moved = [drift(noise, f)[0] for f in range(8)]  # each left-mover's noise drifts left, frame by frame
        assert moved[0] == 0 and moved[-1] <= -3 and moved == sorted(moved, reverse=True)

    saved = checkpoint_config(make_config("shapes-tiny", {"noise_warp": 0.5}), build_unet("tiny"), text, {})
    assert saved["diffusion"]["noise_warp"] == 0.5  # a run saves its amount with the model ...
    pipe = TextToVideo.from_pretrained(tiny_checkpoint(tmp_path / "w", diffusion=saved["diffusion"]))
    assert pipe.sampling.noise_warp == 0.5  # ... and sampling reads it from there

    def start(motion=None, **changes):
        """The sampler's starting noise (C, F, H, W) in units of sigma_max, solved from its first Euler step
        x1 = x + (s1 - s) / s * (x - denoised) (no motion_cond: the hint can only steer by the noise)."""
        seen = []
        sampling = pipe.sampling.merged(steps=2, sampler="euler", guidance=1.0, **changes)  # 1: one call per step
        pipe("a red circle moving left", sampling=sampling, frames=8, size=32, seed=0, motion=motion, progress=False,
             callback=seen.append)
        s, s1, x1, d = (seen[0][k] for k in ("sigma", "sigma_next", "x", "denoised"))
        return ((x1 * s - d * (s - s1)) / s1 / s)[0].float()

    warped = start(motion="-0.25,0", noise_warp=1.0)
    moved = [drift(warped, f) for f in range(8)]  # a quarter of the 32 px canvas to the left over the clip
    assert moved[-1] == (-8, 0) and [m[0] for m in moved] == sorted((m[0] for m in moved), reverse=True)
    assert torch.equal(start(motion="-0.25,0"), start(motion="-0.25,0", noise_warp=0.5))  # the saved amount
    assert not torch.equal(start(motion="-0.25,0"), start(motion="0.25,0"))
    plain = start(noise_warp=0.0)  # independent noise per frame: the last frame is not the first one moved
    assert (plain[:, -1] * plain[:, 0]).mean().abs() < 0.1
    with pytest.raises(ValueError, match="noise_warp must be in"):
        pipe.sampling.merged(noise_warp=2.0)
