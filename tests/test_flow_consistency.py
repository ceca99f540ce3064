"""The training-time optical-flow consistency term (train/flow_consistency.py)."""

import numpy as np
import pytest
import torch

pytest.importorskip("cv2")

from stillmotion.data.shapes import ShapesWorld  # noqa: E402
from stillmotion.data.video_io import to_float  # noqa: E402
from stillmotion.eval.fvd import shuffle_time  # noqa: E402
from stillmotion.flow import warp  # noqa: E402
from stillmotion.train.flow_consistency import (  # noqa: E402
    FlowCache,
    clip_flow,
    flow_consistency_loss,
    noise_weight,
    warp_frames,
)


def moving_clips(n=4, frames=8):
    world = ShapesWorld(size=32, frames=frames, p_two=0.0, motions=["left", "right", "up", "down"])
    return [world.sample(i).video for i in range(n)]


def term(videos, x0_hat=None):
    flows = [clip_flow(v) for v in videos]
    x0 = torch.stack([to_float(v) for v in videos])  # (B, C, F, H, W)
    backward = torch.from_numpy(np.stack([f for f, _ in flows]))
    seen = torch.from_numpy(np.stack([s for _, s in flows]))
    return flow_consistency_loss(x0 if x0_hat is None else x0_hat, backward, seen), x0, backward, seen


def test_static_clip_has_zero_flow_and_zero_term():
    still = np.repeat(moving_clips(1)[0][:1], 6, axis=0)  # frame 0 held
    backward, seen = clip_flow(still)
    assert backward.shape == (5, 32, 32, 2) and not backward.any() and seen.all()
    loss, *_ = term([still])
    assert loss.item() < 1e-10  # grid_sample at integer positions, up to float32 rounding


def test_real_clips_agree_with_their_flow_and_teleporting_ones_do_not():
    videos = moving_clips()
    real, x0, backward, seen = term(videos)
    shuffled = shuffle_time(x0, generator=torch.Generator().manual_seed(0))
    broken, *_ = term(videos, shuffled)  # same flows, frames in another order: objects jump
    assert (real < 0.02).all(), real
    assert (broken > 5 * real).all(), (real, broken)


def test_warp_frames_matches_the_numpy_warp_and_is_differentiable():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64, requires_grad=True)
    flow = torch.randn(2, 9, 11, 2, generator=g, dtype=torch.float64) * 2
    out = warp_frames(frames, flow)
    for i in range(2):
        expected, _ = warp(frames[i].detach().permute(1, 2, 0).numpy(), flow[i].numpy())
        assert np.allclose(out[i].detach().permute(1, 2, 0).numpy(), expected, atol=1e-9)
    out.sum().backward()
    assert frames.grad is not None and frames.grad.abs().sum() > 0


def test_errors_cache_and_weight():
    videos = moving_clips(1)
    with pytest.raises(ValueError, match="expected flows"):
        flow_consistency_loss(torch.zeros(1, 3, 8, 32, 32), torch.zeros(1, 8, 32, 32, 2), torch.ones(1, 8, 32, 32))
    cache = FlowCache(size=1)
    first = cache(7, videos[0])
    assert cache(7, videos[0]) is first  # the same object: computed once
    cache(8, videos[0])
    assert cache(7, videos[0]) is not first  # evicted
    other = videos[0][::-1].copy()  # another clip under the same key (another run's seed 7): its own flows
    assert not np.allclose(cache(7, other)[0], cache(7, videos[0])[0])
    w = noise_weight(torch.tensor([0.0, 1.0, 10.0]))
    assert torch.allclose(w, torch.tensor([1.0, 0.5, 1 / 101], dtype=torch.float64))


def test_training_with_the_term(tmp_path):
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import train

    def losses(weight, name):
        run = train(make_config("shapes-tiny", {"out": str(tmp_path / name), "steps": 2,
                                                "flow_consistency": weight, "p_mean": -2.0, "p_std": 0.5}))
        return (run.parent / "log.csv").read_text().splitlines()[1:]

    assert losses(0.0, "plain") != losses(5.0, "flow")  # the term is on and counted in the logged loss
    with pytest.raises(ValueError, match="flow_consistency must be >= 0"):
        make_config("shapes-tiny", {"flow_consistency": -1})
