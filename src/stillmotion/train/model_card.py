"""A model card written from what the checkpoint and the evaluation report record, never typed by hand.

    stillmotion evaluate --model runs/x --n 256 --out runs/x-eval
    stillmotion export runs/x src/stillmotion/assets/shapes-s --report runs/x-eval/report.json --notes notes.md
"""

from __future__ import annotations

import json
from pathlib import Path

from stillmotion.atomic import write_atomic


def training_stages(record: dict) -> list[dict]:
    """The runs that made a checkpoint, earliest first: a run started with init_from records its parent."""
    stages = []
    while record:
        stages.append(record)
        record = record.get("init_from") or {}
    return stages[::-1]


def model_card(config: dict, report: dict | None = None, notes: str | None = None) -> str:
    """Markdown: what the model is, the exact commands that trained it, where and how long, how well it does."""
    model, data, record = config["model"], config.get("data", {}), config.get("record", {})
    stages = training_stages(record)
    minutes = sum(s.get("wall_clock_s", 0) for s in stages) / 60
    steps = sum(s.get("step", 0) for s in stages)
    clips = sum(s.get("clips_seen", 0) for s in stages)
    lines = [
        "# Model card: the shipped text-to-video model", "",
        f"A {record.get('params', 0) / 1e6:.2f}M-parameter factorized space-time U-Net "
        f"(`{model.get('arch')}`, channels {model.get('channels')}, patch {model.get('patch_size')}, space-time "
        f"attention at levels {model.get('spacetime_attn_levels')}), {config['diffusion']['parameterization']}-"
        f"parameterized, conditioned on `{config['text_encoder']['name']}` token embeddings. It makes "
        f"{data.get('frames')}-frame {data.get('size')}x{data.get('size')} clips of the synthetic "
        f"`{data.get('world')}` world. Weights stored as {record.get('stored_dtype', 'float32')}, loaded as float32.",
        "", "## How it was made", "",
        f"{len(stages)} stage(s), {steps} optimizer steps, {clips:,} training clips, {minutes:.1f} minutes of "
        "training in all. Each stage, exactly as run (each later stage starts from the weights of the one before):",
        "", "| stage | command | steps | wall clock | hardware | threads | torch |", "|---|---|---|---|---|---|---|"]
    for i, s in enumerate(stages, 1):
        cmds = "<br>".join(f"`{c}`" for c in s.get("commands", [])) or "(not recorded)"
        lines.append(f"| {i} | {cmds} | {s.get('step')} | {s.get('wall_clock_s', 0) / 60:.1f} min | "
                     f"{s.get('hardware', '?')} | {s.get('threads', '?')} | {s.get('torch', '?')} |")
    train = config.get("train", {})
    lines += ["", f"Seed {train.get('seed')}, batch {train.get('batch_size')}, lr {train.get('lr')}, EMA "
              f"{train.get('ema_decay')} (warmup {train.get('ema_warmup', 10.0)}), noise levels "
              f"log-normal({train.get('p_mean')}, {train.get('p_std')}), "
              f"prompt dropout {train.get('cfg_dropout')}. The last stage's full config is in `config.json`."]
    if report:
        lines += ["", "## Evaluation", "",
                  "| prompt wording | n | colour | direction | colour and direction | vanished | jumping | warping "
                  "error | flicker | dynamic degree (px/frame) | s/clip |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["results"]:
            p, st = r["protocol"], r["stability"]
            nan = float("nan")
            lines.append(f"| {p['split']} | {p['n']} | {r['colour_accuracy']:.3f} | {r['direction_accuracy']:.3f} | "
                         f"{r['colour_and_direction_accuracy']:.3f} | {st['vanished_clips']} | "
                         f"{st.get('jumping_clips', '?')} | {st.get('mean_warping_error', nan):.1f} | "
                         f"{st.get('mean_flicker', nan):.1f} | "
                         f"{st.get('mean_dynamic_degree', nan):.2f} | {r['seconds_per_clip']:.2f} |")
        p = report["results"][0]["protocol"]
        lines += ["", f"Evaluated model: `{report.get('model')}` (`shipped` = these weights, as stored). "
                  f"Protocol: `stillmotion evaluate` — {p['sampler']} sampler, {p['steps']} steps, guidance "
                  f"{p['guidance']}, seed {p['seed']}, one clip per prompt, strategy `{p.get('strategy', 'joint')}`"
                  + (f", starting noise warped along the motion the model plans from the prompt (noise_warp "
                     f"{p['noise_warp']})" if p.get("noise_warp") else "")
                  + (", independent Gaussian noise per frame, nothing overwritten between sampler steps"
                     if not p.get("noise_warp") else "")
                  + "; prompts cycle through all 64 colour x "
                  "direction pairs of single-object scenes. Judge: the pixel probe (`stillmotion.eval.probe`): "
                  "colour = palette colour nearest the median foreground pixel, direction = centroid displacement "
                  "between the first and last third of the clip in 8 compass bins. 'heldout' prompts use sentence "
                  "shapes and synonyms that no training caption uses. 'jumping' counts clips whose object moves more "
                  "than a fifth of the frame between two frames (teleporting). Warping error and flicker are in 0-255 "
                  "levels "
                  "(`stillmotion.eval.temporal`, Farneback flow with a forward-backward occlusion check)."]
        lines += probe_table(report.get("direction_probe") or [])
    if notes:
        lines += ["", "## Limitations and notes", "", notes.strip()]
    return "\n".join(lines) + "\n"


def probe_table(probes: list[dict]) -> list[str]:
    """The high-noise direction probe of the report (eval/motion_probe.py) as a table: pixels (ratio to ideal)."""
    if not probes:
        return []
    levels = [f"{s:g}" for s in probes[0]["sigmas"]]
    lines = ["", "High-noise direction probe (`stillmotion.eval.motion_probe`): how far the clean estimate "
             "(no guidance) for 'moving right' travels beyond 'moving left' (x), 'down' beyond 'up' (y), in "
             "pixels, and as a fraction of the ideal (the world's own mean clips):", "",
             "| task | axis | " + " | ".join(f"sigma {s}" for s in levels) + " | ideal |",
             "|---|---" + "|---" * (len(levels) + 1) + "|"]
    for probe in probes:
        for a, ideal in probe["ideal"].items():
            lines.append(f"| {probe.get('task', 't2v')} | {a} | "
                         + " | ".join(f"{probe['separation'][a][s]:.2f} ({probe['ratio'][a][s]:.2f})" for s in levels)
                         + f" | {ideal:.2f} |")
    return lines


def write_model_card(dest: str | Path, report_path: str | Path | None = None, notes_path: str | Path | None = None
                     ) -> Path:
    """Write dest/MODEL_CARD.md from dest/config.json and an optional evaluation report and notes file."""
    dest = Path(dest)
    config = json.loads((dest / "config.json").read_text())
    report = json.loads(Path(report_path).read_text()) if report_path else None
    notes = Path(notes_path).read_text() if notes_path else None
    return write_atomic(dest / "MODEL_CARD.md", model_card(config, report, notes))
