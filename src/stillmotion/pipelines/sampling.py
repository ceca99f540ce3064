"""How a clip is sampled: one frozen dataclass, one way to change it.

A checkpoint's config.json keeps the model's own settings in its "sampling" entry (written by training, read by
`TextToVideo.from_pretrained` into `pipe.sampling`); every caller changes them the same way, by a new value:

    pipe(prompt, sampling=pipe.sampling.merged(steps=10))            # Python
    stillmotion generate PROMPT --steps 10                            # CLI flags (None: the model's own)

Nothing here overwrites the model's estimates: the fields choose the solver, its noise levels, guidance and how
the starting noise and the first frame are made. Unknown keys and wrong types are refused in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from stillmotion.diffusion.samplers import SAMPLERS
from stillmotion.diffusion.schedules import SCHEDULES
from stillmotion.fieldtypes import field_problem

STRATEGIES = ("joint", "keyframe", "first-frame")


@dataclass(frozen=True)
class SamplingConfig:
    sampler: str = "dpmpp-2m"    # diffusion/samplers.py: euler, heun, ddim, ddpm, dpmpp-2m
    steps: int = 20              # sampler steps (network evaluations: x1, x2 for heun)
    guidance: float = 4.0        # classifier-free guidance scale; 1 turns it off
    schedule: str = "karras"     # noise levels (diffusion/schedules.py)
    strategy: str = "joint"      # a clip without known frames: "joint" denoises all frames together; "keyframe"
    #                              makes frame 0 as an image (F = 1), then the clip as image-to-video from it (Emu
    #                              Video's factorization); "first-frame" keeps frame 0 of a joint pass instead.
    #                              Known frames (image-to-video, in-betweens, continuation) always sample jointly.
    noise_warp: float = 0.0      # how far the starting noise follows the motion (0: independent per frame;
    #                              diffusion/noise_warp.py). Opt-in steering, for models trained with it.

    def __post_init__(self):
        problem = self.problem()
        if problem:
            raise ValueError(f"sampling: {problem}")

    def problem(self) -> str | None:
        """The first impossible value, in one line that says what is allowed (None when all fit)."""
        checks = [(self.sampler in SAMPLERS, f"unknown sampler '{self.sampler}'; choose one of: {', '.join(SAMPLERS)}"),
                  (isinstance(self.steps, int) and self.steps >= 1, f"steps must be >= 1 (got {self.steps})"),
                  (isinstance(self.guidance, (int, float)) and abs(self.guidance) < float("inf"),
                   f"guidance must be a finite number (got {self.guidance}); 1 turns guidance off, 3-5 is usual"),
                  (self.schedule in SCHEDULES and self.schedule != "vp",
                   f"unknown schedule '{self.schedule}'; choose karras or loglinear"),
                  (self.strategy in STRATEGIES,
                   f"unknown strategy '{self.strategy}'; choose one of: {', '.join(STRATEGIES)}"),
                  (isinstance(self.noise_warp, (int, float)) and 0.0 <= self.noise_warp <= 1.0,
                   f"noise_warp must be in [0, 1] (got {self.noise_warp})")]
        return next((message for ok, message in checks if not ok), None)

    def merged(self, **changes) -> SamplingConfig:
        """A copy with the given fields changed; a None value keeps this config's (a CLI flag left out)."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise ValueError(f"sampling: unknown setting(s) {unknown}; known: {known}")
        return dataclasses.replace(self, **_floats({k: v for k, v in changes.items() if v is not None}))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, noise_warp: float = 0.0) -> SamplingConfig:
        """From a config.json "sampling" entry; fields it lacks take the defaults (checkpoints written before the
        entry held more than the strategy), `noise_warp` the one the model was trained with."""
        d = _floats({"noise_warp": noise_warp, **d})
        problem = field_problem(d, cls)
        if problem:
            raise ValueError(f"sampling: {problem}")
        return cls(**d)


def _floats(d: dict) -> dict:
    """guidance and noise_warp as floats where they are ints (JSON's 4, the CLI's 1): numbers either way."""
    number = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    return {k: float(v) if k in ("guidance", "noise_warp") and number(v) else v for k, v in d.items()}
