"""Samplers and schedules: parity with diffusers, closed forms for Gaussian data, reproducibility."""

import math

import pytest
import torch

from stillmotion.diffusion import samplers, schedules
from stillmotion.diffusion.samplers import SAMPLERS, sample

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 notes inside diffusers

MU, S = 0.3, 0.5  # data ~ N(MU, S^2) in every dimension


def gaussian_denoise(x, sigma):
    """The optimal denoiser E[x0 | x] for x0 ~ N(MU, S^2), x = x0 + sigma eps."""
    return MU + S ** 2 / (S ** 2 + sigma ** 2) * (x - MU)


def exact_ode_solution(x_start, sigma_start, sigma_end=0.0):
    """Probability-flow ODE for Gaussian data: x(sigma) - MU scales like sqrt(S^2 + sigma^2)."""
    return MU + (x_start - MU) * math.sqrt(S ** 2 + sigma_end ** 2) / math.sqrt(S ** 2 + sigma_start ** 2)


def record(trajectory):
    return lambda info: trajectory.append((info["sigma_next"].item(), info["x"].clone()))


# ---------------------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, diffusers_name", [("linear", "linear"), ("scaled_linear", "scaled_linear"),
                                                  ("cosine", "squaredcos_cap_v2")])
def test_alphas_cumprod_match_diffusers(kind, diffusers_name):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDIMScheduler(beta_schedule=diffusers_name, beta_start=0.00085, beta_end=0.012)
    ref = sched.alphas_cumprod
    ours = schedules.vp_alphas_cumprod(kind, beta_start=0.00085, beta_end=0.012)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours.float(), ref, rtol=1e-5, atol=1e-7)  # diffusers computes in float32


def test_sigma_alphabar_round_trip_and_shapes():
    ac = schedules.vp_alphas_cumprod("scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(schedules.sigmas_to_alphas_cumprod(schedules.alphas_cumprod_to_sigmas(ac)), ac)
    for sig in [schedules.karras_sigmas(10), schedules.loglinear_sigmas(10), schedules.vp_sigmas(10, ac),
                schedules.get_sigmas("vp", 10, alphas_cumprod=ac, spacing="leading", steps_offset=1)]:
        assert sig.shape == (11,) and sig.dtype == torch.float64 and sig[-1] == 0
        assert (sig[1:] < sig[:-1]).all()
    k = schedules.karras_sigmas(5, sigma_min=0.01, sigma_max=10)
    assert k[0].item() == pytest.approx(10) and k[-2].item() == pytest.approx(0.01)
    with pytest.raises(ValueError, match="unknown schedule"):
        schedules.get_sigmas("nope", 3)


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_timesteps_match_diffusers(spacing):
    diffusers = pytest.importorskip("diffusers")
    ac = schedules.vp_alphas_cumprod("linear")
    for n in (7, 10, 25):
        sched = diffusers.EulerDiscreteScheduler(timestep_spacing=spacing, steps_offset=1)
        sched.alphas_cumprod = ac  # diffusers' float32 alphabar loses ~1e-4 of sigma at t ~ 0
        sched.set_timesteps(n)
        ours = schedules.vp_timesteps(n, spacing=spacing, steps_offset=1)
        torch.testing.assert_close(ours.float(), sched.timesteps.float())
        sig = schedules.vp_sigmas(n, ac, spacing, steps_offset=1)
        torch.testing.assert_close(sig.float(), sched.sigmas, rtol=1e-6, atol=0)


def test_training_sigmas():
    g = torch.Generator().manual_seed(0)
    ln = schedules.sample_training_sigmas(20000, "lognormal", generator=g)
    assert ln.log().mean().item() == pytest.approx(-1.2, abs=0.05)
    assert ln.log().std().item() == pytest.approx(1.2, abs=0.05)
    cos = schedules.sample_training_sigmas(20000, "cosine", generator=g, sigma_min=0.01, sigma_max=50)
    assert cos.min() >= 0.01 and cos.max() <= 50
    assert (cos < 1).float().mean().item() == pytest.approx(0.5, abs=0.02)  # tan(pi/2 t) < 1 <=> t < 1/2
    shifted = schedules.sample_training_sigmas(20000, "cosine", generator=g, shift=2.0, sigma_max=1e9)
    assert (shifted < 2).float().mean().item() == pytest.approx(0.5, abs=0.02)
    ul = schedules.sample_training_sigmas(20000, "uniform_log", generator=g, sigma_min=0.1, sigma_max=10)
    assert ul.log().mean().item() == pytest.approx(0.0, abs=0.05)
    a = schedules.sample_training_sigmas(4, generator=torch.Generator().manual_seed(1))
    b = schedules.sample_training_sigmas(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown kind"):
        schedules.sample_training_sigmas(2, "gamma")
    with pytest.raises(TypeError, match="unknown parameter"):
        schedules.sample_training_sigmas(2, "lognormal", shift=2)


# ---------------------------------------------------------------------------------------------------------
# Parity with diffusers. Same alphas_cumprod (ours, float64, written into the scheduler), same timesteps,
# same analytic model; diffusers works on x_vp = x / sqrt(1 + sigma^2) (DDIM, DPM) or x (Euler).
# Trajectories are compared in VP scale after every step.
# ---------------------------------------------------------------------------------------------------------
SCHEDULES = [("scaled_linear", dict(beta_start=0.00085, beta_end=0.012)), ("cosine", {})]
SHAPE = (2, 3, 2, 4, 4)


def _eps_model(train_sigmas):
    """An eps-predictor for diffusers built from the Gaussian denoiser: model(x_vp, t) -> eps_hat."""
    def model(x_vp, t):
        sigma = train_sigmas[int(t)]
        x = x_vp * (1 + sigma ** 2).sqrt()
        return (x - gaussian_denoise(x, sigma)) / sigma
    return model


def _run_ours(fn, sigmas, x_vp, **kw):
    traj = []
    fn(gaussian_denoise, x_vp * (1 + sigmas[0] ** 2).sqrt(), sigmas, callback=record(traj), **kw)
    return [x / math.sqrt(1 + s ** 2) for s, x in traj]  # back to VP scale


@pytest.mark.parametrize("kind, kw", SCHEDULES)
@pytest.mark.parametrize("spacing", ["trailing", "leading"])
def test_ddim_matches_diffusers(kind, kw, spacing):
    diffusers = pytest.importorskip("diffusers")
    n = 10  # divides 1000, so diffusers' prev_timestep = t - 1000 // n is the next sampling timestep
    ac = schedules.vp_alphas_cumprod(kind, **kw)
    sched = diffusers.DDIMScheduler(timestep_spacing=spacing, set_alpha_to_one=True, steps_offset=0,
                                    clip_sample=False, prediction_type="epsilon")
    sched.alphas_cumprod = ac
    sched.set_timesteps(n)
    sigmas = schedules.vp_sigmas(n, ac, spacing)
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = _run_ours(samplers.sample_ddim, sigmas, x)
    model = _eps_model(schedules.alphas_cumprod_to_sigmas(ac))
    for i, t in enumerate(sched.timesteps):
        x = sched.step(model(x, t), t, x, eta=0.0).prev_sample
        # float64 on both sides: agreement to rounding.
        assert (x - ours[i]).abs().max().item() < 1e-10, f"step {i}"
    assert len(ours) == n


@pytest.mark.parametrize("kind, kw", SCHEDULES)
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_euler_matches_diffusers(kind, kw, spacing):
    diffusers = pytest.importorskip("diffusers")
    n = 12
    ac = schedules.vp_alphas_cumprod(kind, **kw)
    sched = diffusers.EulerDiscreteScheduler(timestep_spacing=spacing, prediction_type="epsilon")
    sched.alphas_cumprod = ac
    sched.set_timesteps(n)
    sigmas = schedules.vp_sigmas(n, ac, spacing)
    x_vp = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = _run_ours(samplers.sample_euler, sigmas, x_vp)
    x = x_vp * (1 + sigmas[0] ** 2).sqrt()  # diffusers' Euler state is VE-scaled
    x_start_max = x.abs().max().item()
    for i, t in enumerate(sched.timesteps):
        sigma = sched.sigmas[i].double()
        eps = (x - gaussian_denoise(x.double(), sigma)) / sigma  # = eps-model(scale_model_input(x))
        x = sched.step(eps, t, x).prev_sample
        x_vp = x.double() / (1 + sigmas[i + 1] ** 2).sqrt()
        # diffusers' Euler steps in float32 (sigmas and sample are cast): 1e-5 in VP scale plus float32
        # rounding of the VE state, which matters for cosine's first step (sigma 2e4 -> 7.7 cancels 2e4-sized
        # numbers: measured 3e-4 to 5e-4; the bound below is 1.9e-3 there and ~1e-5 elsewhere).
        tol = 1e-5 + 2 ** -22 * x_start_max / (1 + sigmas[i + 1] ** 2).sqrt().item()
        assert (x_vp - ours[i]).abs().max().item() < tol, f"step {i}"


@pytest.mark.parametrize("kind, kw", SCHEDULES)
def test_dpmpp_2m_matches_diffusers(kind, kw):
    diffusers = pytest.importorskip("diffusers")
    n = 10
    ac = schedules.vp_alphas_cumprod(kind, **kw)
    sched = diffusers.DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                                                  solver_type="midpoint", lower_order_final=True,
                                                  final_sigmas_type="zero", timestep_spacing="trailing",
                                                  prediction_type="epsilon")
    sched.alphas_cumprod = ac
    sched.set_timesteps(n)
    sigmas = schedules.vp_sigmas(n, ac, "trailing")
    torch.testing.assert_close(sigmas.float(), sched.sigmas)
    sched.sigmas = sigmas  # use the float64 sigmas for the step coefficients too
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = _run_ours(samplers.sample_dpmpp_2m, sigmas, x)
    model = _eps_model(schedules.alphas_cumprod_to_sigmas(ac))
    for i, t in enumerate(sched.timesteps):
        x = sched.step(model(x, t), t, x).prev_sample.double()
        # diffusers casts the sample to float32 inside step(): float32 rounding, VP scale.
        assert (x - ours[i]).abs().max().item() < 1e-5, f"step {i}"


# ---------------------------------------------------------------------------------------------------------
# Closed forms for Gaussian data
# ---------------------------------------------------------------------------------------------------------
SIGMA_MAX = 80.0


def _start(n=4000, seed=0):
    """x_T ~ N(MU, S^2 + SIGMA_MAX^2): the exact marginal at SIGMA_MAX, shaped (n, 1, 2, 2, 2)."""
    z = torch.randn(n, 1, 2, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return MU + math.sqrt(S ** 2 + SIGMA_MAX ** 2) * z


@pytest.mark.parametrize("name, tol", [("euler", 0.03), ("ddim", 0.03), ("heun", 2e-3), ("dpmpp-2m", 2e-3)])
def test_deterministic_samplers_solve_the_ode(name, tol):
    x_t = _start()
    out = sample(name, gaussian_denoise, x_t, schedules.karras_sigmas(128, sigma_max=SIGMA_MAX))
    exact = exact_ode_solution(x_t, SIGMA_MAX)
    # Relative error of the ODE solve (measured at 128 Karras steps: Euler 2.2%, Heun/DPM++ 0.09%).
    assert (out - exact).abs().max() / (exact - MU).abs().max() < tol
    assert out.mean().item() == pytest.approx(MU, abs=0.02)  # 32000 values: sampling error ~0.003
    assert out.std().item() == pytest.approx(S, abs=0.02)


def test_higher_order_beats_euler_and_convergence_orders():
    x_t = _start(64)
    exact = exact_ode_solution(x_t, SIGMA_MAX)
    err = {(name, n): (sample(name, gaussian_denoise, x_t, schedules.karras_sigmas(n, sigma_max=SIGMA_MAX))
                       - exact).abs().max().item()
           for name in ("euler", "heun", "dpmpp-2m") for n in (16, 32, 64)}
    for name in ("heun", "dpmpp-2m"):  # at 16 steps: Euler 17%, Heun 7%, DPM++(2M) 8% relative error
        assert err[name, 16] < err["euler", 16] / 2, err
        assert err[name, 32] / err[name, 64] > 3.5, err  # second order: halving h quarters the error
    assert 1.7 < err["euler", 32] / err["euler", 64] < 2.3, err  # first order


def _ancestral_chain_std(sigmas, eta):
    """Exact output std of an ancestral sampler on Gaussian data: every step is x' - MU = A (x - MU) + B z."""
    var = S ** 2 + SIGMA_MAX ** 2
    for s, s_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        up = min(s_next, eta * s_next * math.sqrt(s ** 2 - s_next ** 2) / s)   # DDIM's noise, VE scale
        down = math.sqrt(s_next ** 2 - up ** 2)
        k = S ** 2 / (S ** 2 + s ** 2)                                        # D = MU + k (x - MU)
        var = (k + down / s * (1 - k)) ** 2 * var + up ** 2
    return math.sqrt(var)


@pytest.mark.parametrize("name, kw", [("ddpm", {}), ("ddim", {"eta": 1.0}), ("ddim", {"eta": 0.5})])
def test_stochastic_samplers_hit_the_distribution(name, kw):
    sigmas = schedules.karras_sigmas(64, sigma_max=SIGMA_MAX)
    x_t = _start()
    out = sample(name, gaussian_denoise, x_t, sigmas, generator=torch.Generator().manual_seed(3), **kw)
    eta = kw.get("eta", 1.0)
    # Ancestral steps are first order in the variance: 64 steps give std 0.457 (DDPM), not 0.5. The exact
    # law of the discrete chain is known, so compare with it (sampling error of the std ~0.002)...
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert out.std().item() == pytest.approx(_ancestral_chain_std(sigmas, eta), abs=0.01)
    # ... and check that the chain converges to the data: std within 1% of S at 2048 steps.
    assert _ancestral_chain_std(schedules.karras_sigmas(2048), eta) == pytest.approx(S, rel=0.01)
    assert (out - exact_ode_solution(x_t, SIGMA_MAX)).abs().mean().item() > 0.05  # really stochastic


def test_ddpm_equals_ddim_eta_one_and_is_reproducible():
    x_t = _start(64)
    sigmas = schedules.karras_sigmas(10)
    run = lambda name, seed, **kw: sample(name, gaussian_denoise, x_t, sigmas,
                                          generator=torch.Generator().manual_seed(seed), **kw)
    a = run("ddpm", 7)
    torch.testing.assert_close(a, run("ddim", 7, eta=1.0), rtol=0, atol=1e-12)
    assert torch.equal(a, run("ddpm", 7))
    assert not torch.allclose(a, run("ddpm", 8))


def test_ddim_eta_zero_is_euler_and_ancestral_step():
    x_t = _start(16)
    sigmas = schedules.karras_sigmas(6)
    torch.testing.assert_close(sample("ddim", gaussian_denoise, x_t, sigmas),
                               sample("euler", gaussian_denoise, x_t, sigmas), rtol=0, atol=1e-12)
    s, s_next = torch.tensor(2.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    down, up = samplers.ancestral_step(s, s_next, eta=1.0)
    assert down ** 2 + up ** 2 == pytest.approx(1.0) and down.item() == pytest.approx(0.5)  # s'^2 / s


def test_common_contract():
    x = _start(2).float()
    sigmas = schedules.karras_sigmas(3)
    seen = []
    def denoise(x, sigma):
        assert x.dtype == torch.float64 and sigma.dtype == torch.float64 and sigma.dim() == 0
        return gaussian_denoise(x, sigma)
    for name in SAMPLERS:
        seen.clear()
        out = sample(name, denoise, x, sigmas, callback=seen.append, generator=torch.Generator())
        assert out.dtype == torch.float32 and out.shape == x.shape
        assert [d["i"] for d in seen] == [0, 1, 2]
        assert set(seen[0]) == {"i", "x", "sigma", "sigma_next", "denoised"}
    with pytest.raises(ValueError, match="unknown sampler"):
        sample("plms", denoise, x, sigmas)
    with pytest.raises(ValueError, match="non-increasing"):
        sample("euler", denoise, x, sigmas.flip(0))


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_an_identity_edit_is_bit_identical_to_no_edit(name):
    x, sigmas = _start(64).float(), schedules.karras_sigmas(6)
    plain = sample(name, gaussian_denoise, x, sigmas, generator=torch.Generator().manual_seed(3))
    calls = []
    def identity(x, denoised, sigma_next):
        calls.append(float(sigma_next))
        return x
    edited = sample(name, gaussian_denoise, x, sigmas, generator=torch.Generator().manual_seed(3), edit=identity)
    assert torch.equal(plain, edited)
    assert calls == pytest.approx(sigmas[1:].tolist())  # once after every step, with the level just reached


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_an_edit_changes_the_state_the_next_step_starts_from(name):
    """A replacement edit (RePaint-style): frame 0 is set to the known value 1.0, noised to the level just
    reached; the sample ends with it exactly, and the callback sees the edited state."""
    x, sigmas = _start(64).float(), schedules.karras_sigmas(6)
    noise = torch.Generator().manual_seed(4)
    def replace(x, denoised, sigma_next):
        x = x.clone()
        x[:, :, 0] = 1.0 + sigma_next * torch.randn(x[:, :, 0].shape, generator=noise, dtype=x.dtype)
        return x
    seen = []
    out = sample(name, gaussian_denoise, x, sigmas, generator=torch.Generator().manual_seed(3), edit=replace,
                 callback=lambda info: seen.append(info["x"][:, :, 0].clone()))
    assert torch.equal(out[:, :, 0], torch.ones_like(out[:, :, 0]))
    assert len(seen) == 6 and torch.equal(seen[-1], torch.ones_like(seen[-1], dtype=seen[-1].dtype))
    assert not torch.equal(out[:, :, 1], torch.ones_like(out[:, :, 1]))
