"""Classifier-free guidance: scale 1 is the conditional model; per-frame scales; one batched pass."""

import torch

from stillmotion.cond import Cond
from stillmotion.diffusion.guidance import bind, cfg_denoiser

B, C, F, H, W = 2, 3, 4, 2, 2


class Recorder:
    """D(x, sigma, cond) = x + text.mean over (L, D), recording each call's batch."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, sigma, cond):
        self.calls.append((x.shape[0], torch.as_tensor(sigma).shape, cond))
        return x + cond.text.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1)


def _conds():
    cond = Cond(text=torch.full((B, 5, 8), 2.0), text_mask=torch.ones(B, 5, dtype=torch.bool))
    uncond = Cond(text=torch.zeros(1, 3, 8), text_mask=torch.zeros(1, 3, dtype=torch.bool))  # batch 1
    return cond, uncond


def test_scale_one_is_the_conditional_model_with_one_call():
    cond, uncond = _conds()
    x = torch.randn(B, C, F, H, W)
    for scale in (1.0, torch.ones(F), torch.ones(B, F)):
        d = Recorder()
        out = cfg_denoiser(d, cond, uncond, scale)(x, torch.tensor(0.5))
        assert len(d.calls) == 1 and d.calls[0][0] == B
        torch.testing.assert_close(out, bind(d, cond)(x, torch.tensor(0.5)))


def test_per_frame_scale_and_batching():
    cond, uncond = _conds()
    x = torch.randn(B, C, F, H, W)
    d = Recorder()
    scale = torch.tensor([1.0, 2.0, 3.0, 7.5])
    out = cfg_denoiser(d, cond, uncond, scale)(x, torch.tensor([0.5, 0.9]))
    assert len(d.calls) == 1
    batch, sigma_shape, both = d.calls[0]
    assert batch == 2 * B and sigma_shape == (2 * B,)
    assert both.text.shape == (2 * B, 5, 8)                                # uncond repeated and padded
    assert both.text_mask[:B].all() and not both.text_mask[B:].any()      # [cond; uncond] order
    d_cond, d_uncond = x + 2.0, x
    for f in range(F):  # frame f gets uncond + s_f (cond - uncond)
        torch.testing.assert_close(out[:, :, f], d_uncond[:, :, f] + scale[f] * (d_cond - d_uncond)[:, :, f])
    per_sample = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0]])
    out = cfg_denoiser(Recorder(), cond, uncond, per_sample)(x, torch.tensor(0.5))
    torch.testing.assert_close(out, x + 2.0 * per_sample.view(B, 1, F, 1, 1))
