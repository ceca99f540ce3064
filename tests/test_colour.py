"""Colour anchoring and the colour planner: the objects' colour measured from pixels, planned from the text and
imposed partway through sampling (diffusion/colour.py)."""

import pytest
import torch

from stillmotion.diffusion.colour import anchor_colour, coverage, object_colour, single_object
from stillmotion.models.planner import PlannerEnsemble
from stillmotion.models.registry import build_unet
from stillmotion.models.unet import UNetConfig

ORANGE = torch.tensor([0.92, 0.10, -0.76])


def _clip(colour: torch.Tensor, frames: int = 4, size: int = 16) -> torch.Tensor:
    """(1, 3, F, H, W): a black clip with a 4x4 square of `colour` moving right one pixel a frame."""
    x = torch.full((1, 3, frames, size, size), -1.0)
    for f in range(frames):
        x[0, :, f, 6:10, 2 + f:6 + f] = colour[:, None, None]
    return x


def test_object_colour_is_the_mean_of_the_object_pixels():
    colour, shown = object_colour(torch.cat([_clip(ORANGE), torch.full((1, 3, 4, 16, 16), -1.0)]))
    assert shown.tolist() == [True, False]  # a black clip shows nothing
    assert torch.allclose(colour[0], ORANGE, atol=1e-6)


def test_anchor_colour_moves_object_pixels_as_much_as_they_are_object():
    red = torch.tensor([0.73, -0.69, -0.69])
    x0 = torch.cat([_clip(red), _clip(red)])  # (2, 3, F, H, W) the clean estimate: red squares
    x0[0, :, 0, 0, 0] = torch.tensor([-0.55, -1.0, -1.0])  # a faint pixel: contrast 0.45, half way to full
    x = x0 + 0.3 * torch.randn_like(x0)  # partly denoised
    out = anchor_colour(x, x0, ORANGE.expand(2, 3), anchored=torch.tensor([True, False]))
    assert torch.equal(out[1], x[1])  # not anchored: unchanged
    delta = out[0] - x[0]  # (C, F, H, W)
    assert torch.equal(delta.abs().amax(0) > 0, (x0[0] != -1).any(0))  # exactly the object pixels move
    shift = ORANGE - object_colour(x0[:1])[0][0]
    assert torch.allclose(delta[:, 0, 7, 3], shift) and torch.allclose(delta[:, 0, 0, 0], shift / 2, atol=1e-6)
    assert torch.allclose(x0[0, :, 1, 7, 4] + delta[:, 1, 7, 4], ORANGE, atol=0.02)  # the inside is orange now
    assert coverage(x0)[0, 0, 0, 0] == pytest.approx(0.5) and coverage(x0)[0, 0, 7, 3] == 1.0


def test_a_clip_showing_two_objects_is_not_recoloured():
    two = _clip(ORANGE)
    two[0, :, :, 12:15, 10:14] = torch.tensor([-0.61, -0.37, 0.80])[:, None, None, None]  # a blue bar as well
    x0 = torch.cat([_clip(ORANGE), two])
    assert single_object(x0).tolist() == [True, False]
    x = x0 + 0.1 * torch.randn_like(x0)
    out = anchor_colour(x, x0, torch.zeros(2, 3))
    assert not torch.equal(out[0], x[0]) and torch.equal(out[1], x[1])


def test_worker_processes_start_after_the_single_object_check():
    """The check leaves no thread pool behind that forked DataLoader workers would hang on (OpenCV's did)."""
    import subprocess
    import sys

    code = ("import torch\n"
            "from stillmotion.diffusion.colour import single_object\n"
            "from stillmotion.train.workers import worker_loader\n"
            "from stillmotion.train.flow_consistency import clip_flow\n"
            "single_object(torch.rand(4, 3, 4, 32, 32) * 2 - 1)\n"
            "clips = torch.randint(0, 255, (4, 8, 32, 32, 3), dtype=torch.uint8).numpy()\n"
            "print(len([clip_flow(c) for c in worker_loader(list(clips), 2)]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split()[-1] == "4", done.stderr[-2000:]


def test_network_plans_colour_from_its_text_tokens():
    net = build_unet("tiny", colour_planner=True, planner_heads=2)
    assert isinstance(net.colour_planner, PlannerEnsemble) and net.planner is None
    text, mask = torch.randn(3, 5, net.config.text_dim), torch.ones(3, 5, dtype=torch.bool)
    assert net.plan_colour(text, mask).shape == (3, 4)
    with pytest.raises(ValueError, match="without colour_planner"):
        build_unet("tiny").plan_colour(text, mask)
    with pytest.raises(ValueError, match="needs text_dim"):
        UNetConfig(colour_planner=True, text_dim=0)


def test_fit_colour_planner_reads_colour_words_from_the_pixels():
    """Fitted alone on 200 clips of a red/blue world: the objects' measured colour (pixels, not labels) teaches
    it the colour words, also in wordings it never saw; a static world needs no flow for it."""
    from stillmotion.models.text import TextEncoder
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import make_source
    from stillmotion.train.planner_fit import fit_planner

    source = make_source(make_config("shapes-tiny", {"frames": 4, "size": 32, "p_two": 0,
                                                     "world_options": '{"colours": ["red", "blue"]}'}))
    text = TextEncoder()
    torch.manual_seed(0)
    net = build_unet("tiny", colour_planner=True, text_dim=text.dim)
    record = fit_planner(net, text, source, list(range(200)), steps=300, batch=32)
    assert set(record) >= {"colour", "clips", "heads"} and "motion" not in record
    plan = net.plan_colour(*text.encode(["a red circle moving left", "a blue square moving up",
                                         "a crimson ball", "a cobalt block drifting right"])).detach()
    red, blue = torch.tensor([0.73, -0.69, -0.69]), torch.tensor([-0.61, -0.37, 0.80])
    for i, want in enumerate([red, blue, red, blue]):
        other = blue if want is red else red
        assert (plan[i, :3] - want).norm() < (plan[i, :3] - other).norm(), plan


def test_pipeline_recolours_at_every_level_below_its_sigma_only_where_the_plan_is_sure(tmp_path, monkeypatch):
    from stillmotion.diffusion.schedules import get_sigmas
    from stillmotion.pipelines import text_to_video
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import train

    run = train(make_config("shapes-tiny", {"steps": 1, "model_overrides": {"motion_cond": True},
                                            "out": str(tmp_path / "m")}))
    pipe = text_to_video.TextToVideo.from_pretrained(run)
    assert pipe.colour_sigma == 0.0  # off unless the model's config or the caller asks

    class Sure(torch.nn.Module):  # stands in for a fitted colour planner: orange, sure for the first prompt only
        def forward(self, text, mask):
            log_std = torch.tensor([-5.0, 0.0])[:text.shape[0], None]
            return torch.cat([ORANGE.expand(text.shape[0], 3), log_std], dim=1)

    pipe.denoiser.net.colour_planner = Sure()
    events, seen = [], []
    real = text_to_video.anchor_colour

    def spy(x, x0, colour, anchored):
        seen.append((colour.clone(), anchored.clone()))
        events.append("colour")
        return real(x, x0, colour, anchored)

    def trajectory_spy(x, d, a, anchor_frame, offset):
        events.append("trajectory")
        return x
    monkeypatch.setattr(text_to_video, "anchor_colour", spy)
    monkeypatch.setattr(text_to_video, "follow_trajectory", trajectory_spy)
    levels = get_sigmas("karras", 10)[1:-1]  # the levels the sampler stops at between steps
    below = int((levels <= 0.2).sum())
    pipe(["an orange circle moving left", "two things"], steps=10, motion="left", trajectory_sigma=1.0,
         colour_sigma=0.2, progress=False, callback=lambda info: events.append(float(info["sigma"])))
    assert 2 <= below == len(seen) and all(a.tolist() == [True, False] for _, a in seen)  # unsure: never recoloured
    assert all(torch.allclose(c[0], ORANGE) for c, _ in seen)
    assert len(events) == 10 + below + int((levels <= 1.0).sum())  # 10 steps and every anchoring (both kinds)
    def level_before(i):  # the noise level of the sampler step before / after event i
        return next(e for e in reversed(events[:i]) if isinstance(e, float))

    def level_after(i):
        return next(e for e in events[i + 1:] if isinstance(e, float))
    at, moved = events.index("colour"), events.index("trajectory")
    assert moved < at and level_before(at) > 0.2 >= level_after(at) and level_before(moved) > 1.0 >= level_after(moved)
    assert all(level_after(i) <= 0.2 for i, e in enumerate(events) if e == "colour")  # then on each later level
    assert all(level_after(i) <= 1.0 for i, e in enumerate(events) if e == "trajectory")
    events.clear()
    pipe("an orange circle moving left", steps=10, motion="left", trajectory_sigma=1.0, colour_sigma=1.0,
         progress=False, callback=lambda info: events.append(float(info["sigma"])))
    assert events.index("colour") + 1 == events.index("trajectory")  # at one level: colour first
    assert events.count("colour") == int((levels <= 1.0).sum())
    seen.clear()
    pipe("an orange circle", steps=10, progress=False)  # off by default
    assert not seen
    with pytest.raises(ValueError, match="colour_sigma must be >= 0"):
        pipe("a red circle", steps=1, colour_sigma=-1.0, progress=False)
    pipe.denoiser.net.colour_planner = None
    with pytest.raises(ValueError, match="no colour planner"):
        pipe("a red circle", steps=1, colour_sigma=1.0, progress=False)
