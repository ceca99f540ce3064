"""Text-to-video: prompt -> text embedding -> guided denoiser -> sampler -> video.

The pipeline holds state (the denoiser and the text encoder) and does no math of its own: noise levels come
from `diffusion.schedules`, the update rule from `diffusion.samplers`, guidance from `diffusion.guidance`.
Known frames (image-to-video, interpolation, prediction) enter through the same `Cond`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from stillmotion import checkpoint
from stillmotion.cond import Cond, motion_hint
from stillmotion.diffusion.denoiser import Denoiser
from stillmotion.diffusion.guidance import cfg_denoiser
from stillmotion.diffusion.noise_warp import warped_noise
from stillmotion.diffusion.samplers import sample
from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.models.planner import plan_hint, plan_std
from stillmotion.models.registry import build_unet
from stillmotion.models.text import TextEncoder
from stillmotion.pipelines.sampling import STRATEGIES, SamplingConfig  # noqa: F401 - STRATEGIES re-exported


class TextToVideo:
    """A text-to-video sampler around a trained denoiser.

    Args:
        denoiser: D(x, sigma, cond) -> x0.
        text: the text encoder the model was trained with.
        frames, size: the default clip shape (the model was trained on it; other frame counts also work).
        info: the checkpoint's config (kept for `stillmotion info` and reports); its "sampling" entry gives the
            model's own sampling settings (`pipe.sampling`, a SamplingConfig; pipelines/sampling.py), its
            "diffusion" entry the noise warp the model was trained with (the default of sampling.noise_warp).
    """

    def __init__(self, denoiser: Denoiser, text: TextEncoder, *, frames: int = 16, size: int = 32,
                 info: dict | None = None):
        self.denoiser = denoiser.eval()
        self.text = text
        self.frames, self.size = frames, size
        self.info = info or {}
        self.sampling = SamplingConfig.from_dict(self.info.get("sampling", {}),
                                                 noise_warp=self.info.get("diffusion", {}).get("noise_warp", 0.0))

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: str | torch.device = "cpu") -> TextToVideo:
        """Load a checkpoint folder (or run folder); None loads the model shipped inside the package."""
        path = shipped_model_path() if path is None else Path(path)
        config = checkpoint.load_config(path, required=checkpoint.REQUIRED)  # every field checked by type
        net = build_unet(checkpoint.model_config(config))
        weights = {k: v.float() for k, v in checkpoint.load_weights(path).items()}  # float16 release -> float32
        try:
            missing, unexpected = net.load_state_dict(weights, strict=False)
        except RuntimeError as e:  # shapes that differ: a multi-line report, of which the first error is enough
            first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
            raise ValueError(f"checkpoint '{path}': model.safetensors does not fit its config.json ({first}); "
                             "copy or export the checkpoint again") from e
        if missing or unexpected:
            raise ValueError(f"checkpoint '{path}' does not fit its own config: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        net.to(device).eval().requires_grad_(False)
        diff = config["diffusion"]
        text = TextEncoder(config["text_encoder"]["name"])
        return cls(Denoiser(net, diff["parameterization"], diff["sigma_data"], diff.get("data_mean", 0.0)), text,
                   frames=config["data"]["frames"], size=config["data"]["size"], info=config)

    def passes(self, frames: int | None = None, sampling: SamplingConfig | None = None, known: bool = False) -> int:
        """Sampler passes one call makes (`callback` is called steps x passes times): 2 for the keyframe and
        first-frame strategies on clips (the first frame, then the clip from it), else 1. `known`: known frames
        are given, which always samples jointly."""
        strategy = "joint" if known else (sampling or self.sampling).strategy
        return 2 if strategy != "joint" and (frames or self.frames) > 1 else 1

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def encode(self, prompts: list[str]) -> Cond:
        """Token embeddings of the prompts; a warning names what a prompt loses past the encoder's max_length."""
        for prompt in dict.fromkeys(prompts):
            cut = self.text.cut_text(prompt)
            if cut:  # a long preamble would otherwise silently erase "moving up" from the prompt and the plan
                warnings.warn(f"the prompt is longer than the text encoder's {self.text.max_length} tokens, so it "
                              f"never sees '{cut}'; shorten the prompt (put the motion early)", stacklevel=3)
        emb, mask = self.text.encode(prompts)
        return Cond(text=emb.to(self.device), text_mask=mask.to(self.device))

    @torch.no_grad()
    def plan(self, prompts: str | list[str]) -> Tensor:
        """What the motion planner reads from each prompt (models with `motion_planner`): (B, 4) rows
        [dx, dy, given, std], the hint (canvas fractions over the clip; given = 0 where the prompt does not fix
        the motion) and the plan's spread."""
        net = self.denoiser.net
        if getattr(net, "planner", None) is None:
            raise ValueError("this model has no motion planner (train one with --set model.motion_cond=true "
                             "--set model.motion_planner=true)")
        cond = self.encode([prompts] if isinstance(prompts, str) else list(prompts))
        plan = net.plan_motion(cond.text, cond.text_mask).float()  # (B, 3)
        return torch.cat([plan_hint(plan), plan_std(plan)[:, None]], dim=1)

    @torch.no_grad()
    def conditions(self, prompts: list[str], negatives: list[str] | None = None, motion=None, *,
                   warp: float = 0.0) -> tuple[Cond, Cond, Tensor]:
        """What guidance conditions on: (cond, uncond, displacement).

        cond holds the prompts' tokens and, for models with motion hints, the hint (the user's `motion`, else the
        one the model's planner reads from each prompt); uncond the negatives' tokens (the user's hint too, not a
        planned one); displacement (B, 2) is that motion in canvas fractions over the clip (zeros if none), which
        warped noise follows. See `__call__` for `motion`.
        """
        b, device = len(prompts), self.device
        cond, uncond = self.encode(prompts), self.encode(negatives if negatives is not None else [""] * b)
        net = self.denoiser.net
        motion_cond = getattr(getattr(net, "config", None), "motion_cond", False)
        displacement = torch.zeros(b, 2)  # (B, 2) the motion the noise follows (canvas fractions over the clip)
        if motion is None and getattr(net, "planner", None) is not None:
            plan = net.plan_motion(cond.text, cond.text_mask).float()  # (B, 3), from the tokens encoded above
            cond.motion, uncond.motion = plan_hint(plan), motion_hint(None, b).to(device)
            displacement = plan[:, :2].cpu()  # the planned mean, even where the plan is unsure (as trained)
        elif motion is not None and motion != "none":
            if not motion_cond and warp == 0:
                raise ValueError("this model was not trained with motion hints (motion_cond) or warped noise; drop "
                                 "the motion hint, give --noise-warp 1 to steer by the noise alone, or train one "
                                 "with --set model.motion_cond=true or --set noise_warp=1")
            hint = motion_hint(motion, b).to(device)
            if motion_cond:
                cond.motion = uncond.motion = hint
            displacement = hint[:, :2].cpu()
        return cond, uncond, displacement

    @torch.inference_mode()
    def __call__(self, prompt: str | list[str], *, sampling: SamplingConfig | None = None, seed: int = 0,
                 negative: str | list[str] = "", frames: int | None = None, size: int | None = None,
                 known_frames: Tensor | None = None, frame_mask: Tensor | None = None, motion=None,
                 progress: bool = True, callback=None) -> Tensor:
        """Generate one clip per prompt.

        Args:
            prompt: a prompt or a list of B prompts.
            sampling: sampler, steps, guidance, schedule, strategy, noise warp (pipelines/sampling.py); None: the
                model's own (`self.sampling`, from its config.json). Change one field with
                `sampling=pipe.sampling.merged(steps=10)`.
            seed: the clip is a deterministic function of (prompt, seed, settings).
            negative: what to steer away from (the unconditional branch of guidance); "" is the usual empty prompt.
            frames, size: clip shape; defaults to what the model was trained on.
            known_frames: (B, C, F, H, W) frames to keep, with `frame_mask` (B, F) marking them; they always
                sample jointly (the strategy chooses how a clip without known frames is made).
            motion: a motion hint for models trained with one (`motion_cond`): a direction ("left", "up-right",
                "static", ...), or (dx, dy) / "DX,DY" in canvas fractions over the clip (cond.py `motion_hint`).
                It conditions both guidance branches, so guidance still steers by the prompt alone. None: the
                hint the model's motion planner reads from each prompt (`plan`), if it has one, on the prompt's
                branch only (guidance then steers by prompt and plan); "none": no hint at all. With
                sampling.noise_warp > 0 the starting noise follows that motion too.
        Returns:
            (B, C, F, H, W) videos in [-1, 1].
        """
        sampling = sampling or self.sampling
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        negatives = [negative] * len(prompts) if isinstance(negative, str) else list(negative)
        frames, size = frames or self.frames, size or self.size
        _check_call(prompts, negatives, frames, size)
        b, device = len(prompts), self.device
        cond, uncond, displacement = self.conditions(prompts, negatives, motion, warp=sampling.noise_warp)
        g = torch.Generator(device).manual_seed(seed)
        bar = tqdm(total=sampling.steps * self.passes(frames, sampling, known_frames is not None), desc="sampling",
                   disable=not progress, leave=False)

        def on_step(info):
            bar.update(1)
            if callback is not None:
                callback(info)

        def run(known: Tensor | None, mask: Tensor | None, length: int = frames) -> Tensor:
            """One sampler pass over (B, 3, length, H, W) noise; known frames (with mask (B, length)) are kept."""
            cond.frames = uncond.frames = None if known is None else known.to(device)
            cond.frame_mask = uncond.frame_mask = None if known is None else mask.to(device, torch.float32)
            denoise = cfg_denoiser(self.denoiser, cond, uncond, sampling.guidance)
            sigmas = get_sigmas(sampling.schedule, sampling.steps).to(device)
            x = torch.randn((b, 3, length, size, size), generator=g, device=device)  # (B, 3, F, H, W)
            x = warped_noise(x, displacement, sampling.noise_warp, generator=g) * sigmas[0].float()
            video = sample(sampling.sampler, denoise, x, sigmas, generator=g, callback=on_step)
            if known is not None:  # known frames are returned exactly as given
                keep = cond.frame_mask[:, None, :, None, None]
                video = keep * cond.frames + (1 - keep) * video
            return video.clamp(-1, 1)

        if known_frames is not None:
            video = run(known_frames, frame_mask if frame_mask is not None else torch.ones(b, frames))
        elif sampling.strategy == "joint" or frames == 1:
            video = run(None, None)
        else:  # a first frame (an image, F = 1, or frame 0 of a joint pass), then the clip from it
            start = run(None, None, 1 if sampling.strategy == "keyframe" else frames)  # (B, 3, 1 or F, H, W)
            first = torch.zeros(b, frames)
            first[:, 0] = 1
            known = torch.zeros(b, 3, frames, size, size, device=device)
            known[:, :, :1] = start[:, :, :1]
            video = run(known, first)
        bar.close()
        return video


def _check_call(prompts: list[str], negatives: list[str], frames: int, size: int) -> None:
    """Refuse an impossible call in one line, before any work."""
    if not prompts:
        raise ValueError("give at least one prompt")
    if len(negatives) != len(prompts):
        raise ValueError(f"{len(negatives)} negative prompts for {len(prompts)} prompts")
    if frames < 1:
        raise ValueError(f"frames must be >= 1 (got {frames})")
    if size < 8 or size % 8:
        raise ValueError(f"size must be a multiple of 8 (got {size})")


def shipped_model_path() -> Path:
    """The small model that ships inside the package (trained with `stillmotion train --preset shapes-s`)."""
    return Path(__file__).resolve().parent.parent / "assets" / "shapes-s"


def load(path: str | Path | None = None, *, device: str = "cpu") -> TextToVideo:
    """`stillmotion.load()`: the shipped model, or any checkpoint / run folder."""
    return TextToVideo.from_pretrained(path, device=device)
