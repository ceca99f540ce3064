"""Fréchet distance between two sets of feature vectors, in float64, with no scipy and no downloads.

Each set is summarised by a Gaussian N(mu, S) (mean and covariance of its feature vectors) and the two
Gaussians are compared with the squared Fréchet (2-Wasserstein) distance (Dowson & Landau 1982; used by FID,
Heusel et al. 2017, and FVD, Unterthiner et al. 2018):

    d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})

Like FID and FVD, the value returned is the *squared* distance. The matrix square roots are taken by symmetric
eigen-decomposition (`numpy.linalg.eigh`) with tiny negative eigenvalues (round-off) clipped to zero, so the
result is real and stable even for singular covariances (fewer samples than feature dimensions).

Naming: the number means nothing without the feature network that produced the features. Name the metric
after it, e.g. "FVD-shapes" for the project's own video feature network on the shapes world, and never compare
it with FVD values from the literature (those use an I3D network trained on Kinetics, a specific resize and clip
protocol, and thousands of clips). Compare only numbers computed with the same network, clip count and protocol.

Sample size: the estimate is biased upward by roughly O(D / N) (D feature dimensions, N samples per set), so
compare sets of equal size, and prefer N well above D.
"""

from __future__ import annotations

import numpy as np
import torch


def _as_float64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (D, D) via eigh; round-off negatives -> 0."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # V diag(sqrt w) V^T


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a set of feature vectors.

    Args:
        features: (N, D) array or tensor, one feature vector per row; N >= 2.

    Returns:
        (mu, sigma): (D,) mean and (D, D) unbiased covariance (divides by N - 1), both float64.

    Raises:
        ValueError: not 2-D, fewer than 2 samples, or non-finite values.
    """
    x = _as_float64(features)
    if x.ndim != 2:
        raise ValueError(f"gaussian_stats expects features (N, D), one vector per row; got shape {x.shape}. "
                         "Flatten each sample's features into one row first")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"gaussian_stats needs at least 2 samples to estimate a covariance; got {n}. "
                         f"Use many more (well above the feature dimension D={d}) for a meaningful distance")
    if not np.isfinite(x).all():
        raise ValueError("gaussian_stats: features contain NaN or inf; check the feature network's inputs")
    mu = x.mean(axis=0)                                  # (D,)
    centred = x - mu                                     # (N, D)
    sigma = centred.T @ centred / (n - 1)                # (D, D)
    return mu, sigma


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^{1/2} S2 S1^{1/2})^{1/2}), computed in float64.
    (tr sqrt(S1 S2) equals the last trace, since S1 S2 and S1^{1/2} S2 S1^{1/2} have the same eigenvalues; the
    symmetric form lets us use eigh and stay real.)

    Args:
        mu1, mu2: (D,) means.
        sigma1, sigma2: (D, D) covariances (symmetric positive semi-definite).

    Returns:
        The squared distance, a float >= 0 (round-off below zero is clipped to 0).

    Raises:
        ValueError: shapes that are not (D,) and (D, D) with one D, or non-finite values.
    """
    mu1, mu2 = _as_float64(mu1), _as_float64(mu2)
    s1, s2 = _as_float64(sigma1), _as_float64(sigma2)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance expects mu (D,) and sigma (D, D) with the same D for both sets; got "
                         f"mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}. Were the two "
                         "sets embedded by the same feature network?")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, s1, s2)):
        raise ValueError("frechet_distance: statistics contain NaN or inf; check the features")
    root1 = _psd_sqrt(s1)                                # S1^{1/2}
    middle = root1 @ s2 @ root1                          # S1^{1/2} S2 S1^{1/2}, symmetric PSD
    w = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(w, 0.0, None)).sum()    # tr (S1^{1/2} S2 S1^{1/2})^{1/2}
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return float(max(value, 0.0))


def frechet_distance_features(a, b) -> float:
    """Squared Fréchet distance between two feature sets (N1, D) and (N2, D), e.g. real vs generated clips.

    See the module docstring for what to call the result and what not to compare it with.

    Raises:
        ValueError: fewer than 2 samples in a set, or different feature dimensions.
    """
    a, b = _as_float64(a), _as_float64(b)
    if a.ndim == 2 and b.ndim == 2 and a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance_features: the two sets have different feature dimensions "
                         f"({a.shape[1]} vs {b.shape[1]}); embed both with the same feature network")
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def joint_scale(features, conditions) -> float:
    """alpha of the Fréchet Joint Distance: mean ||feature|| / mean ||condition|| over the reference set, so that
    neither block of [features, alpha * conditions] dominates the other (DeVries et al. 2019, sec. 3)."""
    f, c = _as_float64(features), _as_float64(conditions)
    norm_c = np.linalg.norm(c, axis=1).mean()
    if norm_c == 0:
        raise ValueError("joint_scale: every condition vector is zero; pass an embedding of what each clip was "
                         "asked to show (e.g. one-hot attributes)")
    return float(np.linalg.norm(f, axis=1).mean() / norm_c)


def frechet_joint_distance(features_a, conditions_a, features_b, conditions_b, *,
                           alpha: float | None = None) -> float:
    """Fréchet Joint Distance (FJD, DeVries et al. 2019): the Fréchet distance of [features, alpha * condition].

    A plain Fréchet distance compares what two sets look like; FJD also compares what each sample looks like
    *given what it was conditioned on* (a class, a caption's attributes), through the cross-covariance of the two
    blocks. Swapping conditions between samples leaves the plain distance unchanged and raises FJD.

    Args:
        features_a, features_b: (N1, D) and (N2, D) features; set a is the reference.
        conditions_a, conditions_b: (N1, K) and (N2, K) condition embeddings of the same samples.
        alpha: the condition block's scale; None: `joint_scale(features_a, conditions_a)`.

    Returns:
        The squared distance in R^(D + K), a float >= 0.
    """
    fa, ca, fb, cb = (_as_float64(x) for x in (features_a, conditions_a, features_b, conditions_b))
    if len(fa) != len(ca) or len(fb) != len(cb):
        raise ValueError(f"frechet_joint_distance: one condition row per feature row is needed; got "
                         f"{len(fa)} features / {len(ca)} conditions and {len(fb)} / {len(cb)}")
    alpha = joint_scale(fa, ca) if alpha is None else alpha
    return frechet_distance_features(np.hstack([fa, alpha * ca]), np.hstack([fb, alpha * cb]))
