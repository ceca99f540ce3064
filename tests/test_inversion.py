"""DDIM inversion (diffusion/inversion.py): the closed form for Gaussian data, first-order convergence, and the
round trip inversion -> sampling that gives the input back, for an untrained network too."""

import math

import pytest
import torch

from stillmotion.data.video_io import to_float
from stillmotion.data.worlds import get_world
from stillmotion.diffusion.guidance import bind
from stillmotion.diffusion.inversion import invert_euler
from stillmotion.diffusion.samplers import sample_euler
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.pipelines.text_to_video import load

MU, S = 0.3, 0.5  # data ~ N(MU, S^2) in every dimension


def gaussian_denoise(x, sigma):
    """The optimal denoiser E[x0 | x] for x0 ~ N(MU, S^2), x = x0 + sigma eps."""
    return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)


def ode_solution(x0, sigma):
    """The probability-flow ODE for Gaussian data from sigma = 0: x(sigma) - MU grows like sqrt(S^2 + sigma^2)."""
    return MU + (x0 - MU) * math.sqrt(S ** 2 + sigma ** 2) / S


def test_inversion_follows_the_closed_form_with_first_order_error():
    x0 = torch.linspace(-1, 1, 64, dtype=torch.float64).view(1, 1, 4, 4, 4)
    errors = []
    for n in (50, 100, 200):
        sigmas = get_sigmas("loglinear", n, sigma_min=1e-3, sigma_max=10.0).flip(0)  # 0, 1e-3, ..., 10
        x = invert_euler(gaussian_denoise, x0, sigmas)
        errors.append((x - ode_solution(x0, 10.0)).abs().max().item())
    assert errors[-1] < 0.05 * (ode_solution(x0, 10.0) - MU).abs().max().item()
    for coarse, fine in zip(errors, errors[1:]):  # Euler: halving the step halves the error
        assert 1.7 < coarse / fine < 2.3


def test_fixed_point_iterations_invert_euler_exactly():
    x0 = torch.randn(2, 3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = get_sigmas("karras", 8)
    plain = sample_euler(gaussian_denoise, invert_euler(gaussian_denoise, x0, sigmas.flip(0)), sigmas)
    exact = sample_euler(gaussian_denoise, invert_euler(gaussian_denoise, x0, sigmas.flip(0), iterations=100), sigmas)
    assert (plain - x0).abs().max() > 1e-3  # 8 plain DDIM inversion steps are visibly off ...
    torch.testing.assert_close(exact, x0, rtol=0, atol=1e-9)  # ... solving each step makes the round trip exact


def test_invert_rejects_decreasing_sigmas_and_negative_iterations():
    x = torch.zeros(1, 3, 2, 4, 4)
    with pytest.raises(ValueError, match="increasing"):
        invert_euler(gaussian_denoise, x, get_sigmas("karras", 4))
    with pytest.raises(ValueError, match="iterations"):
        invert_euler(gaussian_denoise, x, get_sigmas("karras", 4).flip(0), iterations=-1)


@pytest.fixture(scope="module")
def tiny_pipe(tiny_multitask):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and spares a shared machine
    yield load(tiny_multitask)
    torch.set_num_threads(threads)


def _world_clip(pipe):
    world = get_world("shapes", size=pipe.size, frames=pipe.frames, p_two=0.0)
    clip = world.sample(10**9)
    return to_float(clip.video)[None].double(), clip.caption  # (1, 3, F, H, W)


@torch.no_grad()
def test_round_trip_with_an_untrained_network(tiny_pipe):
    """Inverting with a prompt and sampling back with the same prompt (Euler, no guidance) returns the clip.

    Plain DDIM inversion is off by O(step): this untrained net's round trip misses by ~0.44 (of the range [-1, 1])
    at 10 steps and ~0.24 at 20 (measured), so the test asserts the first-order convergence, not a small error.
    Ten fixed-point corrections per step solve each step (the contraction per correction is about
    (1 - sigma_lo / sigma_hi) |1 - dD/dx|, ~0.5 on a 10-step Karras schedule), and then 10 steps give the clip
    back to 2e-3 (a quarter of one 8-bit level; measured 9e-4): that tolerance is the iteration's convergence,
    not the network's quality, which is why it holds for an untrained net.
    """
    x0, caption = _world_clip(tiny_pipe)
    cond, _, _ = tiny_pipe.conditions([caption])
    denoise = bind(tiny_pipe.denoiser, cond)

    def round_trip_error(steps, iterations=0):
        sigmas = get_sigmas("karras", steps)
        x = sample_euler(denoise, invert_euler(denoise, x0, sigmas.flip(0), iterations=iterations), sigmas)
        return (x - x0).abs().max().item()

    coarse, fine = round_trip_error(10), round_trip_error(20)
    assert 1.6 < coarse / fine < 2.4  # first order: twice the steps, half the error
    assert round_trip_error(10, iterations=10) < 2e-3
