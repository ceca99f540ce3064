"""The high-noise direction probe (diffusion/direction_probe.py) and plain sampling in the pipeline."""

import torch

from stillmotion.cond import Cond
from stillmotion.data.shapes import direction_clips
from stillmotion.data.video_io import to_float
from stillmotion.diffusion.denoiser import Denoiser
from stillmotion.diffusion.direction_probe import direction_probe, ideal_separation, travel
from stillmotion.diffusion.guidance import cfg_denoiser
from stillmotion.diffusion.samplers import sample
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.models.registry import build_unet


def clips(direction: str, n: int = 64) -> torch.Tensor:
    return torch.stack([to_float(v) for v in direction_clips(direction, n, frames=9, size=24)])  # (N, 3, F, H, W)


def test_travel_reads_a_square_moved_by_known_pixels():
    video = -torch.ones(1, 3, 9, 24, 24)
    for f in range(9):
        video[0, 0, f, 10:14, 2 + f:6 + f] = 1.0  # a red square moving right by one pixel a frame
    dx, dy = travel(video)[0].tolist()
    assert abs(dx - 6.0) < 1e-4 and abs(dy) < 1e-4  # last three frames' mean (7) minus the first three's (1)
    assert travel(video.flip(-1))[0, 0] < -5.9 and travel(video.transpose(-1, -2))[0, 1] > 5.9


def test_ideal_separation_is_what_the_world_moves():
    """Real clips that move right travel right (and left ones left), by the world's amounts: the ideal estimate
    separates the two by their mean travel, about two thirds of the path twice over."""
    right, left = travel(clips("right"))[:, 0], travel(clips("left"))[:, 0]
    assert (right > 0).all() and (left < 0).all()
    ideal = ideal_separation(lambda d: clips(d))
    assert ideal["x"] > 0.5 * float(right.mean() - left.mean()) > 2.0 and ideal["y"] > 2.0


class _Oracle(torch.nn.Module):
    """A denoiser that returns the mean clip of the direction its prompt names, whatever the input (the ideal
    estimate at infinite noise); the prompt reaches it as a one-token 'embedding' holding the direction's index."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.means = {i: clips(d).mean(0) for i, d in enumerate(("left", "right", "up", "down"))}

    def forward(self, x, sigma, cond):
        return torch.stack([self.means[int(i)] for i in cond.text[:, 0, 0]])


def _encode(prompts):
    index = {"left": 0, "right": 1, "up": 2, "down": 3}
    return Cond(text=torch.tensor([[[float(index[p.split()[-1]])]] for p in prompts]))


def test_probe_gives_the_ideal_for_the_ideal_estimate_and_zero_for_a_blind_one():
    oracle = _Oracle()
    probe = direction_probe(oracle, _encode, subjects=["a red circle"], frames=9, size=24, sigmas=(40.0,), n=2)
    ideal = ideal_separation(lambda d: clips(d))
    assert abs(probe["x"]["40"] - ideal["x"]) < 1e-3 and abs(probe["y"]["40"] - ideal["y"]) < 1e-3
    blind = lambda x, sigma, cond: torch.zeros_like(x)  # noqa: E731 - the same estimate for every prompt
    blind.parameters = oracle.parameters
    probe = direction_probe(blind, _encode, subjects=["a red circle"], frames=9, size=24, sigmas=(40.0,), n=2)
    assert probe["x"]["40"] == 0.0 and probe["y"]["40"] == 0.0


def test_default_sampling_is_the_sampler_alone():
    """The pipeline's default path is plain diffusion: independent Gaussian noise, the sampler and guidance,
    nothing written into the clip between steps. Its clip equals the sampler run by hand on the same noise."""
    from stillmotion.models.text import TextEncoder
    from stillmotion.pipelines.text_to_video import TextToVideo

    torch.manual_seed(0)
    text = TextEncoder()
    net = build_unet("tiny", text_dim=text.dim)
    for p in net.parameters():  # a tiny network that does something (zero-init outputs would hide edits)
        p.data.normal_(0, 0.05)
    pipe = TextToVideo(Denoiser(net.eval(), "v"), text, frames=4, size=16)
    steps_seen = []
    video = pipe("a red circle moving left", sampling=pipe.sampling.merged(steps=3), seed=5, progress=False,
                 callback=steps_seen.append)
    assert len(steps_seen) == 3

    g = torch.Generator().manual_seed(5)
    sigmas = get_sigmas("karras", 3)
    x = torch.randn((1, 3, 4, 16, 16), generator=g) * sigmas[0].float()
    denoise = cfg_denoiser(pipe.denoiser, pipe.encode(["a red circle moving left"]), pipe.encode([""]), 4.0)
    by_hand = sample("dpmpp-2m", denoise, x, sigmas, generator=g).clamp(-1, 1)
    assert torch.equal(video, by_hand)
