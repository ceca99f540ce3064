"""Turn a network into a denoiser D(x, sigma, cond) -> x0_hat; the one place parameterizations live.

Whatever the network predicts (eps, v, x0, EDM's F, flow velocity), it is wrapped as (Karras et al. 2022,
"Elucidating the Design Space of Diffusion-Based Generative Models", Eq. 7 and Table 1):

    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))

with x = x0 + sigma * eps in the library's one currency (VE sigma). Samplers, guidance and pipelines only
see D and never branch on the parameterization. Training uses the same four coefficients: the network's
own target is F* = (x0 - c_skip * x) / c_out, and ||F - F*||^2 = ||D - x0||^2 / c_out^2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stillmotion.cond import Cond
from stillmotion.diffusion.schedules import compute_dtype

PARAMETERIZATIONS = ("eps", "v", "x0", "edm", "flow")


def precondition(parameterization: str, sigma: Tensor, sigma_data: float = 0.5
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The coefficients (c_skip, c_out, c_in, c_noise) of D = c_skip x + c_out F(c_in x, c_noise).

    Derivations (x = x0 + sigma eps; VP models see x_vp = alpha x0 + s eps with alpha = 1/sqrt(1+sigma^2),
    s = sigma/sqrt(1+sigma^2), i.e. x_vp = alpha x):

    - "eps" (Ho et al. 2020; Karras Table 1 "VP"): F = eps. x0 = x - sigma eps, so c_skip = 1,
      c_out = -sigma, c_in = alpha = 1/sqrt(1+sigma^2).
    - "v" (Salimans & Ho 2022, "Progressive Distillation", Sec. 4): F = v = alpha eps - s x0 and
      x0 = alpha x_vp - s v = alpha^2 x - s v, so c_skip = 1/(1+sigma^2), c_out = -sigma/sqrt(1+sigma^2),
      c_in = 1/sqrt(1+sigma^2). (It is "edm" with sigma_data = 1 up to the sign of c_out.)
    - "x0": F = x0, so c_skip = 0, c_out = 1; the network sees the VP-scaled input, c_in = alpha.
    - "edm" (Karras Table 1 "ours"): c_skip = sd^2/(sigma^2+sd^2), c_out = sigma sd/sqrt(sigma^2+sd^2),
      c_in = 1/sqrt(sigma^2+sd^2), chosen so that the input and the target F* have unit variance.
    - "flow" (rectified flow, Liu et al. 2022, "Flow Straight and Fast"): time t = sigma/(1+sigma),
      x_t = (1-t) x0 + t eps = x/(1+sigma), F = velocity eps - x0. Then x0 = x_t - t F, so
      c_skip = c_in = 1/(1+sigma), c_out = -sigma/(1+sigma).

    c_noise = log(sigma)/4 for every parameterization (Karras Table 1): the network's `noise_level` input.

    Args:
        parameterization: one of "eps", "v", "x0", "edm", "flow".
        sigma: noise level(s), any shape; float64 recommended.
        sigma_data: std of the data, used by "edm" only.

    Returns:
        Four tensors shaped like `sigma`.
    """
    sigma = torch.as_tensor(sigma, dtype=torch.float64) if not torch.is_tensor(sigma) else sigma
    one = torch.ones_like(sigma)
    alpha = (1 + sigma ** 2).rsqrt()  # VP input scale: x_vp = alpha * x
    if parameterization == "eps":
        c_skip, c_out, c_in = one, -sigma, alpha
    elif parameterization == "v":
        c_skip, c_out, c_in = alpha ** 2, -sigma * alpha, alpha
    elif parameterization == "x0":
        c_skip, c_out, c_in = torch.zeros_like(sigma), one, alpha
    elif parameterization == "edm":
        sd2 = sigma_data ** 2
        c_skip = sd2 / (sigma ** 2 + sd2)
        c_out = sigma * sigma_data * (sigma ** 2 + sd2).rsqrt()
        c_in = (sigma ** 2 + sd2).rsqrt()
    elif parameterization == "flow":
        c_skip, c_out, c_in = 1 / (1 + sigma), -sigma / (1 + sigma), 1 / (1 + sigma)
    else:
        raise ValueError(f"precondition: unknown parameterization {parameterization!r}; "
                         f"expected one of {PARAMETERIZATIONS}")
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


class Denoiser(nn.Module):
    """Wraps a network `net(x, noise_level, cond)` as D(x, sigma, cond) -> x0_hat.

    Args:
        net: the backbone; sees `c_in * x` in its own dtype and `noise_level = log(sigma)/4`.
        parameterization: what the net predicts: "eps" | "v" | "x0" | "edm" | "flow".
        sigma_data: data std for "edm" (ignored otherwise).
        data_mean: the network denoises x - data_mean and D adds it back: D(x) = m + D_net(x - m). Every
            parameterization assumes zero-mean data; clips that are mostly black background (mean about -0.9 in
            [-1, 1]) are not, and a from-scratch net then spends hundreds of steps learning that offset
            (measured: x0 error at sigma 0.3 after 100 steps 0.037 with m = -0.9 vs 0.076 without).
    """

    def __init__(self, net: nn.Module, parameterization: str = "v", sigma_data: float = 0.5, data_mean: float = 0.0):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"Denoiser: unknown parameterization {parameterization!r}; "
                             f"expected one of {PARAMETERIZATIONS}")
        self.net = net
        self.parameterization = parameterization
        self.sigma_data = sigma_data
        self.data_mean = data_mean

    def _net_dtype(self, x: Tensor) -> torch.dtype:
        p = next(self.net.parameters(), None) if isinstance(self.net, nn.Module) else None
        return p.dtype if p is not None else x.dtype

    def _coefficients(self, x: Tensor, sigma) -> tuple[Tensor, ...]:
        """(sigma, c_skip, c_out, c_in) broadcastable to x (B,C,F,H,W) and c_noise (B,) or (B,F)."""
        s, s_x = _sigma_shapes(x, sigma)
        c_skip, c_out, c_in, _ = precondition(self.parameterization, s_x, self.sigma_data)
        return s_x, c_skip, c_out, c_in, s.log() / 4

    def _net(self, x: Tensor, c_in: Tensor, c_noise: Tensor, cond: Cond | None) -> Tensor:
        dtype = self._net_dtype(x)
        return self.net((c_in * x).to(dtype), c_noise.to(dtype), cond)

    def forward(self, x: Tensor, sigma: float | Tensor, cond: Cond | None = None) -> Tensor:
        """D(x, sigma, cond).

        Args:
            x: (B, C, F, H, W) noisy video, x = x0 + sigma * eps.
            sigma: python float, 0-d, (B,) or (B, F) tensor (per-frame noise levels).
            cond: conditioning passed to the net unchanged.

        Returns:
            (B, C, F, H, W) x0_hat in x's dtype. The preconditioning is computed in float64 and cast to the
            net's dtype only for the net call.
        """
        _, c_skip, c_out, c_in, c_noise = self._coefficients(x, sigma)
        x = x - self.data_mean  # the same noise on zero-mean data
        out = self._net(x, c_in, c_noise, cond)
        return (self.data_mean + c_skip * x + c_out * out).to(x.dtype)

    def loss(self, x0: Tensor, sigma: float | Tensor, cond: Cond | None = None, noise: Tensor | None = None,
             generator: torch.Generator | None = None, mask: Tensor | None = None,
             min_snr_gamma: float | None = None, return_x0: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Per-sample MSE in the network's own target space.

        With x = x0 + sigma * noise and target F* = (x0 - c_skip x) / c_out (eps for "eps", v for "v", ...),
        loss = mean (F - F*)^2 = mean ||D - x0||^2 / c_out^2, i.e. the denoising loss weighted by
        1/c_out^2 (Karras et al. 2022, Eq. 8: for "edm" this is EDM's lambda(sigma) = 1/c_out^2).

        Args:
            x0: (B, C, F, H, W) clean videos.
            sigma: float, 0-d, (B,) or (B, F) noise levels (see `sample_training_sigmas`).
            cond: conditioning for the net.
            noise: (B, C, F, H, W) standard normal noise; drawn with `generator` when None.
            generator: torch.Generator used when `noise` is None.
            mask: optional (B, 1, F, 1, 1) (or broadcastable) weights, 0 for frames excluded from the loss
                (e.g. known conditioning frames); the mean is over included elements only.
            min_snr_gamma: Min-SNR-gamma weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR
                Weighting Strategy", eq. 9): weight ||D - x0||^2 by min(SNR, gamma) with SNR = 1 / sigma^2, i.e.
                multiply this loss by min(SNR, gamma) * c_out^2. Low noise levels, whose loss is mostly noise the
                network cannot predict yet, then stop drowning the levels where a video's layout is decided.

            return_x0: also return the prediction D(x) (B, C, F, H, W), for terms on the predicted clip.

        Returns:
            (B,) loss per sample (mean over C, F, H, W), float32 (float64 if x0 is float64); with return_x0,
            (loss, x0_hat).
        """
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device,
                                dtype=torch.promote_types(x0.dtype, torch.float32))
        sigma_x, c_skip, c_out, c_in, c_noise = self._coefficients(x0, sigma)
        x0 = x0 - self.data_mean
        # The coefficients are float64 (B,1,1|F,1,1) tensors, so x and the target are formed in float64:
        # (x0 - c_skip x) / c_out cancels catastrophically at small sigma in low precision.
        x = x0 + sigma_x * noise                          # (B,C,F,H,W) noisy input
        target = (x0 - c_skip * x) / c_out                # (B,C,F,H,W) eps / v / x0 / F* / velocity
        out = self._net(x, c_in, c_noise, cond).to(target.dtype)
        err = (out - target) ** 2
        if min_snr_gamma is not None:
            err = err * (sigma_x ** -2).clamp(max=min_snr_gamma) * c_out ** 2  # (B,C,F,H,W) x (B,1,1|F,1,1)
        out_dtype = torch.promote_types(x0.dtype, torch.float32)
        if mask is None:
            per_sample = err.mean(dim=(1, 2, 3, 4))
        else:
            mask = mask.to(err.dtype).expand_as(err)
            per_sample = (err * mask).sum(dim=(1, 2, 3, 4)) / mask.sum(dim=(1, 2, 3, 4)).clamp(min=1)
        if return_x0:
            return per_sample.to(out_dtype), (self.data_mean + c_skip * x + c_out * out).to(out_dtype)
        return per_sample.to(out_dtype)


def _sigma_shapes(x: Tensor, sigma) -> tuple[Tensor, Tensor]:
    """sigma as (B,) or (B,F), and broadcastable to x (B,C,F,H,W) as (B,1,1,1,1) or (B,1,F,1,1)."""
    b, f = x.shape[0], x.shape[2]
    s = torch.as_tensor(sigma, dtype=compute_dtype(x.device), device=x.device)
    if s.dim() == 0:
        s = s.expand(b)
    if s.shape == (b,):
        return s, s.view(b, 1, 1, 1, 1)
    if s.shape == (b, f):  # per-frame noise levels, e.g. known frames kept at low sigma
        return s, s.view(b, 1, f, 1, 1)
    raise ValueError(f"Denoiser: sigma must be a float, 0-d, (B,) or (B, F) tensor for x of shape "
                     f"{tuple(x.shape)} (B, C, F, H, W); got sigma of shape {tuple(s.shape)}")
