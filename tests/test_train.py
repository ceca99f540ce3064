"""Training: tiny runs on each world, checkpoint round trip, exact resume, and 2-process DDP == 1 process."""

import dataclasses
import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from stillmotion import checkpoint
from stillmotion.pipelines.sampling import SamplingConfig
from stillmotion.train.config import make_config
from stillmotion.train.loop import train


def history(out):
    return checkpoint.load_training_state(out)["loss_history"]


@pytest.mark.parametrize("preset", ["shapes-tiny", "digits-tiny"])
def test_tiny_run_on_each_world(tmp_path, preset):
    cfg = make_config(preset, {"out": str(tmp_path / "run"), "steps": 3})
    path = train(cfg)
    assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
    losses = history(tmp_path / "run")
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") >= 3
    assert (tmp_path / "run" / "samples" / "final.gif").is_file()


def test_checkpoint_round_trip(tmp_path):
    from stillmotion.pipelines.text_to_video import TextToVideo

    cfg = make_config("shapes-tiny", {"out": str(tmp_path / "run"), "steps": 2})
    train(cfg)
    pipe = TextToVideo.from_pretrained(tmp_path / "run")
    saved = checkpoint.load_weights(tmp_path / "run")
    for k, v in pipe.denoiser.net.state_dict().items():
        assert torch.equal(v, saved[k]), k
    config = checkpoint.load_config(tmp_path / "run")
    assert config["train"]["steps"] == 2 and config["record"]["step"] == 2
    assert config["record"]["commands"] == []  # a library call: the CLI records its command line (test_cli.py)
    a = pipe("a red circle moving left", sampling=pipe.sampling.merged(steps=2), seed=3, progress=False)
    saved = TextToVideo.from_pretrained(tmp_path / "run" / "checkpoint")
    b = saved("a red circle moving left", sampling=saved.sampling.merged(steps=2), seed=3, progress=False)
    assert a.shape == (1, 3, 4, 16, 16) and torch.equal(a, b)
    assert checkpoint.exists(tmp_path / "run") and not checkpoint.exists(tmp_path / "nothing")
    (tmp_path / "run" / "checkpoint").rename(tmp_path / "run" / "checkpoint.old")  # a save interrupted mid-swap
    assert checkpoint.exists(tmp_path / "run")  # still there to resume from, as resolve finds it


def test_resume_gives_the_same_losses(tmp_path):
    full = make_config("shapes-tiny", {"out": str(tmp_path / "full"), "steps": 6})
    train(full)
    part = make_config("shapes-tiny", {"out": str(tmp_path / "part"), "steps": 3})
    train(part)
    resumed = make_config("shapes-tiny", {"out": str(tmp_path / "part"), "steps": 6})
    train(resumed, resume=True)
    assert history(tmp_path / "part") == history(tmp_path / "full")
    a = checkpoint.load_weights(tmp_path / "full")
    b = checkpoint.load_weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("flows", [False, True])
def test_worker_processes_decode_the_same_clips(tmp_path, flows):
    """workers > 0 decodes micro-batches ahead in DataLoader processes (and measures their flows, which motion
    hints and warped noise need): same losses as doing it in the loop, also with gradient accumulation and across
    a resume."""
    base = {"steps": 4, "grad_accum": 2}
    if flows:
        base.update({"noise_warp": 1.0, "model.motion_cond": True})
    train(make_config("shapes-tiny", {**base, "out": str(tmp_path / "inline")}))
    train(make_config("shapes-tiny", {**base, "steps": 2, "workers": 2, "out": str(tmp_path / "workers")}))
    train(make_config("shapes-tiny", {**base, "workers": 2, "out": str(tmp_path / "workers")}), resume=True)
    assert history(tmp_path / "workers") == history(tmp_path / "inline")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, out, overrides):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    try:
        train(make_config("shapes-tiny", {"out": out, "steps": 3, **overrides}))
    finally:
        from stillmotion.train import dist
        dist.cleanup()


@pytest.mark.parametrize("overrides", [{}, {"model.motion_cond": True, "model.motion_planner": True}],
                         ids=["plain", "motion-planner"])
def test_two_processes_match_one(tmp_path, overrides):
    """2 gloo processes = 1 process; also with the motion planner, whose loss is computed outside the DDP forward."""
    single = str(tmp_path / "single")
    train(make_config("shapes-tiny", {"out": single, "steps": 3, **overrides}))
    double = str(tmp_path / "ddp")
    mp.start_processes(_ddp_worker, args=(2, _free_port(), double, overrides), nprocs=2, join=True,
                       start_method="spawn")
    h1, h2 = history(single), history(double)
    assert len(h1) == len(h2) == 3
    assert max(abs(a - b) for a, b in zip(h1, h2)) < 1e-4, (h1, h2)
    w1, w2 = checkpoint.load_weights(single), checkpoint.load_weights(double)
    worst = max(w1, key=lambda k: (w1[k] - w2[k]).abs().max().item())
    assert (w1[worst] - w2[worst]).abs().max().item() < 1e-4, worst


@pytest.mark.parametrize("overrides, message", [
    ({"frames": 0}, "frames must be >= 1"),
    ({"size": 20}, "multiple of 8"),
    ({"batch_size": 6, "grad_accum": 4}, "divisible"),
    ({"lr": "fast"}, "cannot read 'fast'"),
    ({"colour": "red"}, "unknown training option"),
    ({"min_snr_gamma": "0"}, "min_snr_gamma must be > 0"),
    ({"image_minutes": 1}, "give --minutes larger"),
    ({"image_minutes": 2, "minutes": 2}, "give --minutes larger"),
    ({"image_minutes": 1, "minutes": 2, "init_from": "runs/x"}, "drop one of the two"),
    ({"image_minutes": 1, "minutes": 2, "frames": 1}, "frames must be >= 2"),
    ({"short_frames": 4, "short_minutes": 1, "minutes": 5}, "short_frames must be from 2 to frames - 1"),
    ({"short_minutes": 1, "minutes": 5}, "short_frames must be from 2"),
    ({"short_frames": 2, "minutes": 5}, "needs short_minutes > 0"),
    ({"short_frames": 2, "short_minutes": 1, "image_minutes": 1, "minutes": 2}, "give --minutes larger than"),
    ({"probe_every": "-1"}, "probe_every must be >= 0"),
    ({"sample_trajectory_sigma": 1.0}, "no longer exists"),
    ({"image_p_std": "0"}, "image_p_std must be > 0"),
    ({"p_std": "-1"}, "p_std must be > 0"),
    ({"model": "huge"}, "unknown U-Net preset 'huge'"),
    ({"model.colour": "red"}, "unknown option 'model.colour'"),
    ({"model.head_dim": "8.5"}, "cannot read '8.5' as an integer"),
    ({"model.motion_planner": "true"}, "motion_planner plans a motion hint from the text: it needs motion_cond"),
    ({"model.attn_levels": "[5]"}, "levels \\[5\\] do not exist"),
    ({"sampling.steps": "0"}, "steps must be >= 1"),
    ({"sampling.noise_warp": "1"}, "set noise_warp instead"),
    ({"model_overrides": '{"coords": false}'}, "--set model.coords=false"),
    ({"sample_steps": "10"}, "--set sampling.steps=10"),
    ({"image_frames": "middle"}, "image_frames must be one of"),
    ({"cooldown": "1.5"}, "cooldown must be in \\[0, 1\\]"),
    ({"cooldown": "0.4", "steps": "none"}, "give a budget"),  # a cooldown ends with the budget every run has
    ({"cooldown_to": "-0.1"}, "cooldown_to must be in"),
])
def test_bad_config_is_rejected_clearly(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config("shapes-tiny", overrides)


def test_cooldown_decays_the_learning_rate_over_the_end_of_the_budget():
    from stillmotion.train.loop import budget_spent, lr_at

    cfg = make_config("shapes-tiny", {"lr": "1e-3", "warmup_steps": "10", "steps": "100", "minutes": "10",
                                      "cooldown": "0.4", "cooldown_to": "0.05"})
    assert lr_at(cfg, 4, 0.0) == pytest.approx(5e-4)                     # warmup
    assert lr_at(cfg, 50, budget_spent(cfg, 50, 0.0)) == pytest.approx(1e-3)   # stable until 60% of the budget
    assert lr_at(cfg, 80, budget_spent(cfg, 80, 0.0)) == pytest.approx(1e-3 * (1 - 0.5 * 0.95))
    assert budget_spent(cfg, 10, 540.0) == pytest.approx(0.9)           # whichever budget ends the run first
    assert lr_at(cfg, 99, 1.0) == pytest.approx(5e-5)
    constant = dataclasses.replace(cfg, cooldown=0.0)
    assert lr_at(constant, 99, 1.0) == pytest.approx(1e-3)


def test_the_loop_steps_at_the_scheduled_learning_rate(tmp_path):
    cfg = make_config("shapes-tiny", {"out": str(tmp_path / "run"), "steps": "4", "lr": "1e-3", "cooldown": "0.5",
                                      "cooldown_to": "0.1"})
    train(cfg)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    assert [float(r.split(",")[2]) for r in rows] == pytest.approx([1e-3, 1e-3, 1e-3, 5.5e-4])


def test_image_steps_train_only_the_spatial_layers(tmp_path):
    from stillmotion.models.unet import TEMPORAL_KEYS
    from stillmotion.train.batches import is_image_step

    images = train(make_config("shapes-tiny", {"out": str(tmp_path / "img"), "steps": 2, "image_every": 1}))
    videos = train(make_config("shapes-tiny", {"out": str(tmp_path / "vid"), "steps": 2}))
    wi, wv = checkpoint.load_weights(images), checkpoint.load_weights(videos)
    temporal = [k for k in wi if any(p in k for p in TEMPORAL_KEYS)]
    spatial = [k for k in wi if k not in temporal and "text_" not in k]
    assert temporal and all(not wi[k].any() for k in temporal if k.endswith(("out.weight", "conv.weight")))
    assert any(wv[k].any() for k in temporal)                    # video steps do train them
    assert any((wi[k] != wv[k]).any() for k in spatial)
    assert [is_image_step(make_config("shapes-tiny", {"image_every": 3}), s) for s in range(6)] == \
        [False, False, True, False, False, True]


def test_image_steps_on_first_frames_are_each_clips_frame_0():
    """image_frames="first": an image step trains on each clip's frame 0 with its caption, noise and noise level
    (what a keyframe sampler draws at F = 1); "all" on every frame of every clip."""
    from stillmotion.models.text import TextEncoder
    from stillmotion.train.batches import as_images, make_batch, make_source

    cfg = make_config("shapes-tiny")
    batch = make_batch(cfg, make_source(cfg), TextEncoder("minilm"), [0, 1, 2], torch.device("cpu"))
    first, every = as_images(batch, "first"), as_images(batch, "all")
    assert first.x0.shape == (3, 3, 1, 16, 16) and every.x0.shape == (3 * cfg.frames, 3, 1, 16, 16)
    assert torch.equal(first.x0[:, :, 0], batch.x0[:, :, 0]) and torch.equal(first.noise[:, :, 0], batch.noise[:, :, 0])
    assert torch.equal(first.sigma, batch.sigma) and first.captions == batch.captions
    assert torch.equal(first.cond.text, batch.cond.text) and torch.equal(every.x0[::cfg.frames], first.x0)


def test_world_options_reach_the_world():
    from stillmotion.train.batches import make_source

    world = make_source(make_config("shapes-tiny", {"world_options": '{"motions": ["left", "up"]}'}))
    assert world.motions == ("left", "up")
    assert {world.sample(i).labels.objects[0].motion for i in range(8)} <= {"left", "up"}
    with pytest.raises(ValueError, match="world 'shapes'.*colour"):
        make_source(make_config("shapes-tiny", {"world_options": '{"colour": "red"}'}))


def test_model_and_sampling_are_typed_configs_changed_field_by_field():
    """--model / --set model=NAME picks a U-Net preset, --set model.FIELD and sampling.FIELD change one field (CLI
    strings parsed by the field's type, after any whole replacement); the configs round-trip through to_dict."""
    from stillmotion.models.registry import UNET_PRESETS

    cfg = make_config("shapes-tiny", {"model.blocks_per_level": "[1, 2]", "model": "tiny", "model.coords": "true",
                                      "sampling.guidance": "3", "sampling.steps": "7"})
    assert cfg.model == dataclasses.replace(UNET_PRESETS["tiny"], blocks_per_level=(1, 2), coords=True)
    assert cfg.sampling == SamplingConfig(steps=7, guidance=3.0)
    assert make_config(None, json.loads(json.dumps(cfg.to_dict()))) == cfg  # as config.json keeps it
    assert make_config("shapes-tiny", {"model.blocks_per_level": "2"}).model.blocks_per_level == 2
    assert make_config("shapes-quick").model.moving_rope is True  # presets hold typed configs too


def test_a_config_saved_by_an_earlier_version_loads_in_todays_form():
    """Saved runs named a preset and changed it with a model_overrides dict, and had sample_steps / _strategy."""
    from stillmotion.models.registry import UNET_PRESETS
    from stillmotion.train.config import TrainConfig, upgrade_saved

    old = {**make_config("shapes-tiny").to_dict(), "model": "tiny", "model_overrides": {"motion_cond": True}}
    old = {k: v for k, v in old.items() if k != "sampling"} | {"sample_steps": 5, "sample_strategy": "joint"}
    cfg = TrainConfig.from_dict(old)
    assert cfg.model == dataclasses.replace(UNET_PRESETS["tiny"], motion_cond=True)
    assert cfg.sampling == SamplingConfig(steps=5)
    assert make_config(None, upgrade_saved(old)) == cfg


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'shapes-xxl'.*shapes-tiny"):
        make_config("shapes-xxl")


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 2}))
    train(make_config("shapes-tiny", {"out": str(tmp_path / "b"), "steps": 2, "grad_accum": 2}))
    ha, hb = history(tmp_path / "a"), history(tmp_path / "b")
    assert max(abs(x - y) for x, y in zip(ha, hb)) < 1e-5, (ha, hb)


def test_bf16_autocast_trains(tmp_path):
    train(make_config("shapes-tiny", {"out": str(tmp_path / "run"), "steps": 2, "bf16": True}))
    losses = history(tmp_path / "run")
    assert len(losses) == 2 and all(0 < x < 10 for x in losses)


def test_init_from_starts_at_the_given_weights(tmp_path):
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 2}))
    cfg = make_config("shapes-tiny", {"out": str(tmp_path / "b"), "steps": 1, "lr": "1e-12",
                                      "init_from": str(tmp_path / "a")})
    train(cfg)
    a, b = checkpoint.load_weights(tmp_path / "a"), checkpoint.load_weights(tmp_path / "b")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    with pytest.raises(ValueError, match="do not fit this run's model"):
        train(make_config("shapes-tiny", {"out": str(tmp_path / "c"), "steps": 1, "init_from": str(tmp_path / "a"),
                                          "model.channels": "[8, 24]"}))
    # a net without coordinate channels grows them (at zero) when the new run asks for coords
    train(make_config("shapes-tiny", {"out": str(tmp_path / "d"), "steps": 1, "lr": "1e-12",
                                      "init_from": str(tmp_path / "a"), "model.coords": "true"}))
    d = checkpoint.load_weights(tmp_path / "d")
    assert d["conv_in.weight"].shape[1] == a["conv_in.weight"].shape[1] + 2
    assert d["conv_in.weight"][:, -2:].abs().max() < 1e-9  # started at zero (one step of lr 1e-12 since)
    assert max((a[k] - d[k]).abs().max().item() for k in a if k != "conv_in.weight") < 1e-6


def test_init_from_with_planner_fit_replaces_the_planners(tmp_path):
    """A trained model gains a planner of another shape (more heads): with planner_fit_clips the one init_from
    brings gives way to a freshly fitted one; the rest of the network starts as it was."""
    motion = {"model.motion_cond": True, "model.motion_planner": True}
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 1, **motion}))
    grown = {**motion, "model.planner_heads": 2}
    with pytest.raises(ValueError, match="do not fit this run's model"):  # a one-head planner fits no ensemble
        train(make_config("shapes-tiny", {"out": str(tmp_path / "x"), "steps": 1, "init_from": str(tmp_path / "a"),
                                          **grown}))
    path = train(make_config("shapes-tiny", {"out": str(tmp_path / "b"), "steps": 1, "lr": "1e-12",
                                             "init_from": str(tmp_path / "a"), **grown,
                                             "planner_fit_clips": 12, "planner_fit_steps": 3}))
    a, b = checkpoint.load_weights(tmp_path / "a"), checkpoint.load_weights(path)
    fit = checkpoint.load_config(path)["record"]["planner_fit"]
    assert fit["heads"] == 2 and "motion" in fit
    assert any(k.startswith("planner.heads.1.") for k in b) and "planner.norm.weight" not in b
    assert max((a[k] - b[k]).abs().max().item() for k in a if "planner" not in k) < 1e-6


def test_steps_0_refits_the_planner_and_changes_nothing_else(tmp_path):
    """--steps 0 with planner_fit_clips: a trained model gets a freshly fitted planner; every other weight is
    bit-identical to the model it starts from, and the checkpoint says so (step 0, finished)."""
    motion = {"model.motion_cond": True, "model.motion_planner": True}
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 1, **motion}))
    path = train(make_config("shapes-tiny", {"out": str(tmp_path / "b"), "steps": "0", **motion,
                                             "init_from": str(tmp_path / "a"), "planner_fit_clips": 12,
                                             "planner_fit_steps": 3}))
    a, b = checkpoint.load_weights(tmp_path / "a"), checkpoint.load_weights(path)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if not k.startswith("planner."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("planner."))
    record = checkpoint.load_config(path)["record"]
    assert record["step"] == 0 and record["finished"] and record["planner_fit"]["clips"] == 12
    with pytest.raises(ValueError, match="or 0 to only fit a planner"):
        make_config("shapes-tiny", {"steps": "0"})


def test_a_run_stopped_after_its_planner_fit_resumes_without_fitting_again(tmp_path, capsys):
    """The planner fit is checkpointed before the loop: a run whose budget the fit spends stops at step 0, and
    resumed it trains exactly as the run that went straight on, without fitting a second time."""
    fit = {"model.motion_cond": True, "model.motion_planner": True, "planner_fit_clips": 12,
           "planner_fit_steps": 3, "steps": 2}
    train(make_config("shapes-tiny", {**fit, "out": str(tmp_path / "full")}))
    stopped = make_config("shapes-tiny", {**fit, "minutes": 1e-6, "out": str(tmp_path / "stopped")})
    train(stopped)
    assert checkpoint.load_config(tmp_path / "stopped")["record"]["step"] == 0
    capsys.readouterr()
    train(make_config(None, {**stopped.to_dict(), "minutes": None}), resume=True)
    assert "planner fitted" not in capsys.readouterr().out
    assert history(tmp_path / "stopped") == history(tmp_path / "full")
    a, b = checkpoint.load_weights(tmp_path / "full"), checkpoint.load_weights(tmp_path / "stopped")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_segment_budgets_are_cumulative_and_increasing():
    from stillmotion.train.segments import segment_budgets

    assert segment_budgets({"steps": 10}, 3) == [{"steps": 3}, {"steps": 7}, {"steps": 10}]
    assert segment_budgets({"steps": 2}, 4) == [{"steps": 1}, {"steps": 2}, {"steps": 3}, {"steps": 4}]  # >= 1 each
    assert segment_budgets({"minutes": 10.0}, 2, share=0.5) == [{"minutes": 2.5}, {"minutes": 5.0}]
    with pytest.raises(ValueError, match="points must be >= 1"):
        segment_budgets({"steps": 3}, 0)


def test_short_clip_stage_then_full_length(tmp_path):
    """short_frames: image stage, then short clips (<out>/short, where the planner is fitted, at the peak learning
    rate), then full-length clips from those weights, whose planner stays as fitted."""
    from stillmotion.train.loop import stages

    out = tmp_path / "run"
    cfg = make_config("shapes-tiny", {
        "out": str(out), "steps": 2, "minutes": 0.5, "image_minutes": 0.01, "image_batch_size": 8,
        "short_frames": 2, "short_minutes": 0.02, "cooldown": 0.5, "planner_fit_clips": 12, "planner_fit_steps": 5,
        "model.motion_cond": "true", "model.motion_planner": "true"})
    image, short, video = stages(cfg)
    assert (image.frames, short.frames, video.frames) == (1, 2, cfg.frames)
    assert (short.out, short.init_from, video.init_from) == (str(out / "short"), image.out, str(out / "short"))
    assert (short.minutes, short.steps, short.cooldown, video.cooldown) == (0.02, None, 0.0, 0.5)
    assert video.minutes == pytest.approx(0.47) and video.steps == 2
    assert (short.planner_fit_clips, video.planner_fit_clips) == (12, 0)  # fitted once, in the short stage
    assert stages(dataclasses.replace(cfg, image_minutes=0.0, init_from="runs/x"))[0].init_from == "runs/x"

    path = train(cfg)
    assert checkpoint.load_config(out / "short")["data"]["frames"] == 2
    config = checkpoint.load_config(path)
    assert config["data"]["frames"] == cfg.frames and config["record"]["init_from"]["planner_fit"]["clips"] == 12
    planner = {k: v for k, v in checkpoint.load_weights(out / "short").items() if k.startswith("planner")}
    final = checkpoint.load_weights(path)
    assert planner and all(torch.equal(v, final[k]) for k, v in planner.items())  # not trained after its fit
    from stillmotion.train.loop import _planner_fitted  # and two stages on: followed back through init_from
    assert _planner_fitted({"init_from": config["record"]}) and not _planner_fitted({"init_from": {"step": 3}})


def test_image_stage_then_inflated_video_stage(tmp_path):
    """image_minutes: an image model first (<out>/image), then the video model inflated from it, with fitted
    motion planner (two heads); a resumed run does not train the finished image stage again."""
    from stillmotion.train.loop import stages

    out = tmp_path / "run"
    cfg = make_config("shapes-tiny", {
        "out": str(out), "steps": 2, "minutes": 0.5, "image_minutes": 0.02, "image_batch_size": 8,
        "planner_fit_clips": 12, "planner_fit_steps": 5, "noise_warp": 1.0,
        "model.motion_cond": "true", "model.motion_planner": "true", "model.planner_heads": "2"})
    image, video = stages(cfg)
    assert (image.frames, image.batch_size, image.out, image.minutes) == (1, 8, str(out / "image"), 0.02)
    assert image.model.temporal is False and image.model.motion_planner is False and video.model == cfg.model
    assert video.init_from == str(out / "image") and video.minutes == pytest.approx(0.48)
    assert video.frames == cfg.frames and video.image_minutes == 0
    assert (image.p_mean, image.p_std) == (video.p_mean, video.p_std) == (cfg.p_mean, cfg.p_std)
    lower = stages(dataclasses.replace(cfg, image_p_mean=-1.0, image_p_std=1.2))
    assert (lower[0].p_mean, lower[0].p_std, lower[1].p_mean) == (-1.0, 1.2, cfg.p_mean)  # the image stage's own

    path = train(cfg)
    first = checkpoint.load_config(out / "image")
    assert first["data"]["frames"] == 1 and first["model"]["temporal"] is False and first["record"]["finished"]
    config = checkpoint.load_config(path)
    assert config["record"]["init_from"]["path"] == str(checkpoint.resolve(out / "image"))
    fit = config["record"]["planner_fit"]
    assert fit["clips"] == 12 and fit["heads"] == 2 and "motion" in fit
    assert config["sampling"] == SamplingConfig(steps=2, strategy="joint", noise_warp=1.0).to_dict()  # as trained
    assert config["model"]["motion_planner"] is True
    assert len(history(out)) == 2

    fitted = {k: v for k, v in checkpoint.load_weights(out).items() if "planner." in k}
    assert any(k.startswith("planner.heads.1.") for k in fitted)
    train(make_config(None, {**cfg.to_dict(), "steps": 3}), resume=True)
    assert len(history(out)) == 3
    after = checkpoint.load_weights(out)
    assert fitted and all(torch.equal(after[k], v) for k, v in fitted.items())  # fitted planners stay as fitted
    assert checkpoint.load_config(out / "image")["record"]["step"] == first["record"]["step"]  # not retrained


def test_init_from_leaves_out_parts_the_new_model_does_not_build(tmp_path, capsys):
    """A model with a motion-hint input and a planner grows a plain one: those parts are left out (and said so);
    everything else starts as it was."""
    motion = {"model.motion_cond": True, "model.motion_planner": True}
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 1, **motion}))
    path = train(make_config("shapes-tiny", {"out": str(tmp_path / "b"), "steps": 1, "lr": "1e-12",
                                             "init_from": str(tmp_path / "a")}))
    assert "planner, tmotion weights are left out" in capsys.readouterr().out
    a, b = checkpoint.load_weights(tmp_path / "a"), checkpoint.load_weights(path)
    assert not any(k.startswith(("planner.", "tmotion.")) for k in b)
    assert max((a[k] - b[k]).abs().max().item() for k in b) < 1e-6
