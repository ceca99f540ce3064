"""What a run shows while it trains (rank 0 only): log.csv, TensorBoard, the progress bar, the high-noise
direction probe of the EMA weights (probe.csv) and preview samples."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
from tqdm import tqdm

from stillmotion.diffusion.denoiser import Denoiser
from stillmotion.diffusion.direction_probe import AXES, PROBE_SIGMAS, direction_probe
from stillmotion.models.text import TextEncoder
from stillmotion.train import dist, run_folder
from stillmotion.train.config import TrainConfig, model_sampling


class Log:
    """log.csv (step 1 and every log_every steps), TensorBoard when asked, and the progress bar. A resumed run
    first cuts its logs back to the checkpoint's step (a killed run may have logged past it)."""

    def __init__(self, cfg: TrainConfig, out: Path, step: int, *, resume: bool):
        self.cfg, self.file, self.csv, self.tb = cfg, None, None, None
        if dist.is_main():
            path = out / "log.csv"
            if resume:
                for csv_path in (path, out / "probe.csv"):
                    run_folder.trim_csv(csv_path, step)
            new = not (resume and path.exists())
            self.file = open(path, "w" if new else "a", newline="")  # noqa: SIM115 - closed by close()
            self.csv = csv.writer(self.file)
            if new:
                self.csv.writerow(["step", "loss", "lr", "grad_norm", "clips_per_s", "elapsed_s"])
            self.tb = _tensorboard(out) if cfg.tensorboard else None
        self.bar = tqdm(total=cfg.steps, initial=step, disable=not dist.is_main(), unit="step", dynamic_ncols=True)

    def step(self, step: int, loss: float, *, lr: float, grad_norm: torch.Tensor, seconds: float,
             elapsed: float) -> None:
        """Report the step just taken (`step` steps done): it took `seconds`, `elapsed` in all."""
        if not dist.is_main():
            return
        cfg = self.cfg
        self.bar.update(1)
        postfix = {"loss": f"{loss:.4f}", "clips/s": f"{cfg.batch_size / seconds:.1f}"}
        if cfg.minutes:
            postfix["left"] = f"{max(0.0, cfg.minutes * 60 - elapsed) / 60:.1f}m"
        self.bar.set_postfix(postfix)
        if step % cfg.log_every == 0 or step == 1:
            self.csv.writerow([step, f"{loss:.6f}", f"{lr:.3g}", f"{float(grad_norm):.4f}",
                               f"{cfg.batch_size / seconds:.2f}", f"{elapsed:.1f}"])
            self.file.flush()
            if self.tb is not None:
                self.tb.add_scalar("loss", loss, step)

    def close(self) -> None:
        self.bar.close()
        for f in (self.file, self.tb):
            if f is not None:
                f.close()


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError("tensorboard=true needs the tensorboard package: pip install tensorboard") from e
    return SummaryWriter(str(out / "tensorboard"))


PROBE_SUBJECTS = ["a red circle", "a blue square", "a green triangle", "a yellow circle"]


def log_probe(cfg: TrainConfig, net, text: TextEncoder, step: int, elapsed: float, path: Path) -> None:
    """Append the high-noise direction probe of the EMA weights (diffusion/direction_probe.py) to probe.csv:
    the right-minus-left and down-minus-up travel of the clean estimate at each probe level, in pixels, conditioned
    as sampling conditions it (the prompt, and the hint a motion planner reads from it)."""
    from stillmotion.pipelines.text_to_video import TextToVideo

    pipe = TextToVideo(Denoiser(net, cfg.parameterization, cfg.sigma_data, cfg.data_mean), text, frames=cfg.frames,
                       size=cfg.size)
    probe = direction_probe(pipe.denoiser, lambda prompts: pipe.conditions(prompts)[0], subjects=PROBE_SUBJECTS,
                            frames=cfg.frames, size=cfg.size, n=2, data_mean=cfg.data_mean, seed=0)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "elapsed_s", *(f"{a}@{s:g}" for a in AXES for s in PROBE_SIGMAS)])
        writer.writerow([step, f"{elapsed:.1f}", *(f"{probe[a][f'{s:g}']:.3f}" for a in AXES for s in PROBE_SIGMAS)])


def preview(cfg: TrainConfig, net, text: TextEncoder, stem: Path) -> None:
    """Sample the preview prompts with the EMA weights; write a GIF grid and a contact sheet."""
    from stillmotion.data.video_io import save_contact_sheet, video_grid, write_video
    from stillmotion.pipelines.text_to_video import TextToVideo

    denoiser = Denoiser(net, cfg.parameterization, cfg.sigma_data, cfg.data_mean)
    pipe = TextToVideo(denoiser, text, frames=cfg.frames, size=cfg.size,
                       info={"sampling": model_sampling(cfg).to_dict()})  # as `generate` samples the checkpoint
    videos = pipe(cfg.sample_prompts, seed=0, progress=False)
    stem.parent.mkdir(parents=True, exist_ok=True)
    frames = [v for v in videos.cpu()]
    write_video(stem.with_suffix(".gif"), video_grid(frames, ncols=min(4, len(frames))), fps=8, scale=3)
    save_contact_sheet(stem.with_suffix(".png"), frames, captions=list(cfg.sample_prompts), scale=2)
