"""Denoiser adapters: exact targets give zero loss and exact x0; the loss is weighted denoising error."""

import pytest
import torch
from torch import nn

from stillmotion.diffusion.denoiser import PARAMETERIZATIONS, Denoiser, precondition

SHAPE = (3, 2, 4, 4, 4)  # (B, C, F, H, W)


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(SHAPE, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.7, 25.0], dtype=torch.float64)
    return x0, eps, sigma


def _target(parameterization, x0, eps, sigma, sigma_data=0.5):
    """Each parameterization's regression target, written from its paper (not from `precondition`)."""
    s = sigma.view(-1, 1, 1, 1, 1)
    alpha, sig_vp = (1 + s ** 2).rsqrt(), s * (1 + s ** 2).rsqrt()  # x_vp = alpha x0 + sig_vp eps
    if parameterization == "eps":
        return eps
    if parameterization == "v":  # Salimans & Ho 2022
        return alpha * eps - sig_vp * x0
    if parameterization == "x0":
        return x0
    if parameterization == "flow":  # Liu et al. 2022: velocity of x_t = (1-t) x0 + t eps
        return eps - x0
    # EDM (Karras et al. 2022, Eq. 8): F* = (x0 - c_skip (x0 + n)) / c_out
    sd2 = sigma_data ** 2
    c_skip, c_out = sd2 / (s ** 2 + sd2), s * sigma_data / (s ** 2 + sd2).sqrt()
    return (x0 - c_skip * (x0 + s * eps)) / c_out


def _expected_input(parameterization, x0, eps, sigma, sigma_data=0.5):
    s = sigma.view(-1, 1, 1, 1, 1)
    x = x0 + s * eps
    if parameterization == "flow":
        t = s / (1 + s)
        return (1 - t) * x0 + t * eps
    if parameterization == "edm":
        return x / (s ** 2 + sigma_data ** 2).sqrt()
    return x / (1 + s ** 2).sqrt()  # VP models see x_vp


class Oracle(nn.Module):
    """A 'network' that returns a fixed tensor and records what it was given."""

    def __init__(self, out):
        super().__init__()
        self.out, self.calls = out, []

    def forward(self, x, noise_level, cond):
        self.calls.append((x, noise_level, cond))
        return self.out


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_exact_target_gives_zero_loss_and_exact_x0(parameterization):
    x0, eps, sigma = _data()
    net = Oracle(_target(parameterization, x0, eps, sigma))
    d = Denoiser(net, parameterization)
    loss = d.loss(x0, sigma, noise=eps)
    assert loss.shape == (3,) and loss.max().item() < 1e-20
    x0_hat = d(x0 + sigma.view(-1, 1, 1, 1, 1) * eps, sigma, cond="c")
    torch.testing.assert_close(x0_hat, x0, rtol=0, atol=1e-10)
    x_in, noise_level, cond = net.calls[-1]
    torch.testing.assert_close(x_in, _expected_input(parameterization, x0, eps, sigma))
    torch.testing.assert_close(noise_level, sigma.log() / 4)
    assert cond == "c"


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_loss_is_weighted_denoising_error(parameterization):
    x0, eps, sigma = _data(1)
    out = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    d = Denoiser(Oracle(out), parameterization)
    x = x0 + sigma.view(-1, 1, 1, 1, 1) * eps
    err = ((d(x, sigma) - x0) ** 2).mean(dim=(1, 2, 3, 4))
    c_out = precondition(parameterization, sigma)[1]
    torch.testing.assert_close(d.loss(x0, sigma, noise=eps), err / c_out ** 2)
    if parameterization == "eps":
        torch.testing.assert_close(d.loss(x0, sigma, noise=eps), err / sigma ** 2)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_min_snr_weighting_is_the_same_for_every_parameterization(parameterization):
    # Min-SNR-gamma (Hang et al. 2023): the x0 error weighted by min(1 / sigma^2, gamma), whatever the network predicts
    x0, eps, sigma = _data(3)
    out = torch.randn(SHAPE, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    d = Denoiser(Oracle(out), parameterization)
    x = x0 + sigma.view(-1, 1, 1, 1, 1) * eps
    err = ((d(x, sigma) - x0) ** 2).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(d.loss(x0, sigma, noise=eps, min_snr_gamma=5.0), err * (sigma ** -2).clamp(max=5.0))
    # sigma = 0.01 (SNR 1e4) is capped at 5; sigma = 0.7 (SNR 2.04) and 25 keep the SNR weight
    assert (sigma ** -2).clamp(max=5.0).tolist() == pytest.approx([5.0, 1 / 0.49, 1 / 625])


@pytest.mark.parametrize("parameterization", ["v", "edm"])
def test_data_mean_is_the_same_problem_shifted(parameterization):
    x0, eps, sigma = _data(4)
    out = torch.randn(SHAPE, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    shifted, plain = Denoiser(Oracle(out), parameterization, data_mean=-0.9), Denoiser(Oracle(out), parameterization)
    x = x0 + sigma.view(-1, 1, 1, 1, 1) * eps
    torch.testing.assert_close(shifted(x, sigma), plain(x + 0.9, sigma) - 0.9)
    torch.testing.assert_close(shifted.loss(x0, sigma, noise=eps), plain.loss(x0 + 0.9, sigma, noise=eps))
    assert not torch.allclose(shifted(x, sigma), plain(x, sigma))


def test_loss_mask_excludes_frames_and_generator_is_reproducible():
    x0, eps, sigma = _data(2)
    d = Denoiser(Oracle(torch.zeros(SHAPE, dtype=torch.float64)), "eps")
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 4, 1, 1).expand(3, 1, 4, 1, 1)
    per_frame = (eps ** 2).mean(dim=(1, 3, 4))  # eps-loss of a net that predicts 0, (B, F)
    torch.testing.assert_close(d.loss(x0, sigma, noise=eps, mask=mask), per_frame[:, [0, 2]].mean(1))
    g = lambda: torch.Generator().manual_seed(9)
    assert torch.equal(d.loss(x0, sigma, generator=g()), d.loss(x0, sigma, generator=g()))


def test_sigma_forms_and_dtypes():
    x0, eps, _ = _data(3)
    net = nn.Conv3d(2, 2, 1).to(torch.float32)
    seen = {}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = net

        def forward(self, x, noise_level, cond):
            seen["dtypes"] = (x.dtype, noise_level.dtype, noise_level.shape)
            return self.conv(x)

    d = Denoiser(Net(), "v")
    x = x0 + 0.5 * eps
    a = d(x, 0.5)
    b = d(x, torch.tensor(0.5, dtype=torch.float64))
    c = d(x, torch.full((3,), 0.5, dtype=torch.float64))
    e = d(x, torch.full((3, 4), 0.5, dtype=torch.float64))  # per-frame sigma (B, F)
    assert seen["dtypes"] == (torch.float32, torch.float32, (3, 4))
    assert a.dtype == torch.float64 and torch.equal(a, b) and torch.equal(a, c) and torch.equal(a, e)
    with pytest.raises(ValueError, match="sigma must be"):
        d(x, torch.ones(2))
    with pytest.raises(ValueError, match="unknown parameterization"):
        Denoiser(Net(), "score")
