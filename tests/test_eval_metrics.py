"""Download-free metrics: Fréchet distance closed forms, temporal consistency from flow, PSNR / SSIM."""

import math

import cv2
import numpy as np
import pytest
import torch

from stillmotion.data.video_io import to_float, write_video
from stillmotion.eval.frechet import (
    frechet_distance,
    frechet_distance_features,
    frechet_joint_distance,
    gaussian_stats,
    joint_scale,
)
from stillmotion.eval.reconstruction import psnr, ssim
from stillmotion.eval.temporal import (
    dynamic_degree,
    evaluate_videos,
    flicker,
    temporal_report,
    warping_error,
)
from stillmotion.flow import video_flows, warp

cv2.setNumThreads(1)  # tiny frames; stay off the other cores


def moving_square(frames=8, size=32, step=1, background=40, flicker_levels=0):
    """(F, H, W, 3) uint8: an 8x8 square moving `step` px/frame to the right on a flat background whose
    brightness rises by `flicker_levels` on every odd frame."""
    video = np.full((frames, size, size, 3), background, np.uint8)
    for i in range(frames):
        video[i] += np.uint8(flicker_levels * (i % 2))
        x = 6 + step * i
        video[i, 12:20, x:x + 8] = 200
    return video


def random_covariance(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# ----------------------------------------------------------------------------------------------- Fréchet

def test_identical_sets_have_zero_distance():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 8)) * 3 + 1
    assert frechet_distance_features(x, x) < 1e-6
    few = rng.standard_normal((5, 16))  # fewer samples than dimensions: singular covariance, still zero
    assert frechet_distance_features(few, torch.as_tensor(few)) < 1e-6


def test_diagonal_gaussians_match_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()   # 4.25 + 4 + 1
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_scaled_full_covariance_matches_closed_form():
    # S2 = c^2 S1 (not diagonal): (S1^1/2 S2 S1^1/2)^1/2 = c S1, so d^2 = |dmu|^2 + (1 - c)^2 tr S1.
    rng = np.random.default_rng(1)
    s1 = random_covariance(rng, 6)
    mu1, mu2, c = rng.standard_normal(6), rng.standard_normal(6), 2.5
    expected = ((mu1 - mu2) ** 2).sum() + (1 - c) ** 2 * np.trace(s1)
    assert frechet_distance(mu1, s1, mu2, c**2 * s1) == pytest.approx(expected, rel=1e-9)


def test_general_covariances_match_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    s1, s2 = random_covariance(rng, 5), random_covariance(rng, 5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    r1 = linalg.sqrtm(s1).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(r1 @ s2 @ r1).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_samples_give_distance_close_to_analytic():
    rng = np.random.default_rng(3)
    d, n = 3, 20000
    mu1, mu2 = np.zeros(d), np.array([1.0, -0.5, 0.0])
    s1, s2 = random_covariance(rng, d), random_covariance(rng, d)
    a = rng.multivariate_normal(mu1, s1, size=n)
    b = rng.multivariate_normal(mu2, s2, size=n)
    analytic = frechet_distance(mu1, s1, mu2, s2)
    assert analytic > 0.5
    assert frechet_distance_features(a, b) == pytest.approx(analytic, rel=0.05)
    mu, sigma = gaussian_stats(a)
    assert mu.shape == (d,) and sigma.shape == (d, d)


def test_joint_distance_sees_swapped_conditions_that_the_plain_distance_cannot():
    # two clusters of features, each with its own condition; set b has the same features with swapped conditions
    rng = np.random.default_rng(0)
    feats = np.concatenate([rng.normal(-2, 1, (300, 3)), rng.normal(2, 1, (300, 3))])
    cond = np.repeat(np.eye(2), 300, axis=0)
    swapped = cond[:, ::-1]
    assert frechet_distance_features(feats, feats) < 1e-9
    assert frechet_joint_distance(feats, cond, feats, cond) < 1e-9
    alpha = joint_scale(feats, cond)
    assert alpha == pytest.approx(np.linalg.norm(feats, axis=1).mean())  # one-hot rows have norm 1
    fjd = frechet_joint_distance(feats, cond, feats, swapped)
    # = FD of the concatenations: same means and block variances, the cross-covariance flips sign
    assert fjd == pytest.approx(frechet_distance_features(np.hstack([feats, alpha * cond]),
                                                          np.hstack([feats, alpha * swapped])), rel=1e-12)
    assert fjd > 10.0
    with pytest.raises(ValueError, match="one condition row per feature row"):
        frechet_joint_distance(feats, cond[:5], feats, cond)
    with pytest.raises(ValueError, match="every condition vector is zero"):
        joint_scale(feats, np.zeros_like(cond))


def test_frechet_errors_teach():
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_stats(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="different feature dimensions"):
        frechet_distance_features(np.zeros((10, 4)), np.zeros((10, 5)))
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ----------------------------------------------------------------------------------------------- temporal

def test_warp_zero_flow_is_identity_and_integer_flow_shifts():
    image = np.random.default_rng(4).integers(0, 256, (16, 20, 3)).astype(np.float64)
    same, inside = warp(image, np.zeros((16, 20, 2)))
    assert np.array_equal(same, image) and inside.all()
    shifted, inside = warp(image, np.tile([2.0, 0.0], (16, 20, 1)))      # out(x) = image(x + 2)
    assert np.array_equal(shifted[:, :-2], image[:, 2:])
    assert not inside[:, -2:].any() and inside[:, :-2].all()


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_static_video_scores_exactly_zero(method):
    report = temporal_report(moving_square(step=0), method=method)
    assert report["warping_error"] == 0.0 and report["flicker"] == 0.0
    assert report["dynamic_degree"] == 0.0 and report["moving_fraction"] == 0.0
    assert report["occluded_fraction"] == 0.0 and report["static_fraction"] == 1.0


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_flickering_video_scores_worse_than_smooth_motion(method):
    smooth, flickering = moving_square(), moving_square(flicker_levels=50)
    flows = video_flows(smooth, method)
    assert warping_error(flickering, method=method)["warping_error"] > 10 + warping_error(smooth, flows=flows)[
        "warping_error"]
    assert flicker(flickering, method=method)["flicker"] > 10 + flicker(smooth, flows=flows)["flicker"]


def test_dynamic_degree_is_speed_in_pixels_per_frame():
    one = dynamic_degree(moving_square(step=1))
    two = dynamic_degree(moving_square(step=2))
    assert one["dynamic_degree"] == pytest.approx(1.0, abs=0.2)
    assert two["dynamic_degree"] == pytest.approx(2.0, abs=0.3)
    assert one["moving_fraction"] == 1.0
    assert dynamic_degree(moving_square(step=1), moving_px=1.5)["moving_fraction"] == 0.0


def test_float_clip_scores_like_its_frames():
    video = moving_square()
    assert temporal_report(to_float(video)) == temporal_report(video)


def test_temporal_errors_teach():
    with pytest.raises(ValueError, match="at least 2 frames"):
        temporal_report(moving_square()[:1])
    with pytest.raises(ValueError, match="unknown flow method"):
        warping_error(moving_square(), method="raft")
    with pytest.raises(ValueError, match="farneback"):
        warping_error(np.random.default_rng(8).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8), method="dis")


def test_folder_scores_good_video_and_reports_corrupt_one(tmp_path):
    write_video(tmp_path / "good.mp4", moving_square(), fps=8)
    (tmp_path / "broken.mp4").write_bytes(b"this is not a video" * 50)
    (tmp_path / "notes.txt").write_text("captions live elsewhere")
    result = evaluate_videos(tmp_path)
    assert list(result["videos"]) == ["good.mp4"]
    assert list(result["skipped"]) == ["broken.mp4"] and "broken.mp4" in result["skipped"]["broken.mp4"]
    assert result["ignored"] == ["notes.txt"]
    good = result["videos"]["good.mp4"]
    assert good["frames"] == 8 and good["dynamic_degree"] == pytest.approx(1.0, abs=0.3)
    assert result["mean"]["warping_error"] == good["warping_error"] and math.isfinite(good["warping_error"])
    assert result["settings"]["method"] == "farneback"


# ----------------------------------------------------------------------------------------------- PSNR / SSIM

def test_identical_clips_have_infinite_psnr_and_unit_ssim():
    video = np.random.default_rng(5).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    assert psnr(video, video) == math.inf
    assert ssim(video, video) == pytest.approx(1.0, abs=1e-12)
    assert ssim(to_float(video), to_float(video)) == pytest.approx(1.0, abs=1e-12)
    assert np.isinf(psnr(video, video, per_frame=True)).all()


def test_psnr_known_value_same_in_both_layouts():
    a = np.random.default_rng(6).integers(0, 200, (8, 32, 32, 3), dtype=np.uint8)
    b = a + np.uint8(5)                                                     # MSE = 25 exactly
    expected = 10 * math.log10(255**2 / 25)
    assert psnr(a, b) == pytest.approx(expected, rel=1e-12)
    assert psnr(to_float(a), to_float(b)) == pytest.approx(expected, rel=1e-6)  # range 2 for [-1, 1]
    assert psnr(a, b, per_frame=True) == pytest.approx(np.full(8, expected), rel=1e-12)


def test_ssim_of_flat_frames_is_the_luminance_term():
    a, b = np.full((2, 16, 16, 3), 100, np.uint8), np.full((2, 16, 16, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1), rel=1e-12)


def test_ssim_decreases_with_noise():
    rng = np.random.default_rng(7)
    clean = moving_square().astype(np.float64)
    scores = [ssim(clean.astype(np.uint8),
                   np.clip(clean + rng.normal(0, s, clean.shape), 0, 255).round().astype(np.uint8))
              for s in (2, 10, 40)]
    assert 1 > scores[0] > scores[1] > scores[2]
    assert ssim(clean.astype(np.uint8), clean.astype(np.uint8), per_frame=True).shape == (8,)


def test_reconstruction_errors_teach():
    video = moving_square()
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(video, video[:4])
    with pytest.raises(ValueError, match="both be uint8"):
        ssim(video, to_float(video))
    with pytest.raises(ValueError, match="smaller odd win_size"):
        ssim(video[:, :8, :8], video[:, :8, :8])


def test_report_summary_names_the_hardware_of_each_training_stage():
    """A model fine-tuned on another machine: the summary splits the minutes by machine, never credits all to the
    last one."""
    from stillmotion.eval.prompt_following import _record_line

    cpu = {"step": 100, "wall_clock_s": 600.0, "hardware": "Some CPU, 2 CPU cores", "commands": ["stillmotion train a"]}
    gpu = {"step": 50, "wall_clock_s": 120.0, "hardware": "Some GPU", "commands": ["stillmotion train b"],
           "init_from": {**cpu, "init_from": dict(cpu)}}
    line = _record_line(gpu)
    assert line.startswith("250 steps in 3 stage(s), 20.0 min on Some CPU, 2 CPU cores + 2.0 min on Some GPU;")
    assert line.endswith("last command: `stillmotion train b`")


def test_prompts_are_split_by_held_out_direction_and_colour_words():
    from stillmotion.eval.prompt_following import _wording_split

    rows = [{"prompt": "show me a scarlet orb cruising westward", "colour_ok": False, "direction_ok": False},
            {"prompt": "a red circle moving left", "colour_ok": True, "direction_ok": True},
            {"prompt": "a lemon-yellow disc heading north-west", "colour_ok": True, "direction_ok": True},
            {"prompt": "an emerald square moving up", "colour_ok": True, "direction_ok": False}]
    split = _wording_split(rows)
    assert split["by_direction_word"]["with_heldout_direction_word"] == {"n": 1, "direction_accuracy": 0.0}
    assert split["by_direction_word"]["without"] == {"n": 3, "direction_accuracy": 2 / 3}
    # whole words only: "lemon-yellow" is not the held-out "lemon"
    assert split["by_colour_word"]["with_heldout_colour_word"] == {"n": 2, "colour_accuracy": 0.5}
    # neither kind of held-out word: rows 1 and 2
    assert split["known_attribute_words"] == {"n": 2, "colour_accuracy": 1.0, "direction_accuracy": 1.0,
                                              "colour_and_direction_accuracy": 1.0}
    assert _wording_split([rows[1]]) == {}  # no held-out word: no split


def test_the_low_noise_probe_reads_what_a_denoiser_keeps_of_the_noise_on_object_and_background():
    """kept_noise: an oracle keeps 0, the identity 1, a half-way denoiser 0.5; one that denoises only the background
    keeps all the noise on the object and none beside it."""
    from stillmotion.eval.editing import edit_cases
    from stillmotion.eval.kept_noise import kept_noise

    clean = torch.stack([to_float(c.video) for c in edit_cases(3, frames=4, size=16)])
    assert clean.shape == (3, 3, 4, 16, 16)
    on_object = (clean.amax(1, keepdim=True) > 90 / 127.5 - 1).expand_as(clean)

    def read(denoise):
        return kept_noise(denoise, clean, 0.05, generator=torch.Generator().manual_seed(0))
    oracle, identity = read(lambda x, s: clean), read(lambda x, s: x)
    half = read(lambda x, s: clean + 0.5 * (x - clean))
    background_only = read(lambda x, s: torch.where(on_object, x, clean))
    assert oracle["object"] == oracle["background"] == 0 and oracle["object_rest_levels"] == 0
    assert identity["object"] == pytest.approx(1) and identity["background"] == pytest.approx(1)
    assert half["object"] == pytest.approx(0.5) and half["background"] == pytest.approx(0.5)
    assert background_only["object"] == pytest.approx(1) and background_only["background"] == 0
    wrong_colour = read(lambda x, s: torch.where(on_object, clean + 0.1, clean))
    assert wrong_colour["object"] == pytest.approx(0, abs=1e-6)
    assert wrong_colour["object_rest_levels"] == pytest.approx(12.75, rel=0.05)
