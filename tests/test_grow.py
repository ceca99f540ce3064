"""Growing a trained U-Net by a finer level in front (models/grow.py): which configs grow, and that training
from a grown checkpoint keeps every trained level where its resolution is."""

import dataclasses

import pytest
import torch

from stillmotion import checkpoint
from stillmotion.models.grow import grow_problem, grow_weights
from stillmotion.models.registry import unet_preset
from stillmotion.models.unet import SpaceTimeUNet
from stillmotion.train.config import make_config
from stillmotion.train.loop import train

PATCHED = dataclasses.replace(unet_preset("tiny"), patch_size=2)  # levels at 1/2 and 1/4 of the canvas
GROWN = {"model.patch_size": 1, "model.channels": "[4, 8, 16]", "model.attn_levels": "[2]",
         "model.temporal_attn_levels": "[2]", "model.spacetime_attn_levels": "[2]"}


def grown_config(**change):
    grown = dict(channels=(4, 8, 16), patch_size=1, attn_levels=(2,), temporal_attn_levels=(2,),
                 spacetime_attn_levels=(2,))
    return dataclasses.replace(PATCHED, **{**grown, **change})


def test_grow_problem_names_what_does_not_grow():
    assert grow_problem(PATCHED, grown_config()) is None
    assert "patch_size" in grow_problem(PATCHED, grown_config(patch_size=2))
    assert "channels" in grow_problem(PATCHED, grown_config(channels=(4, 8, 32)))
    assert "attn_levels" in grow_problem(PATCHED, grown_config(attn_levels=(1,)))
    assert "head_dim" in grow_problem(PATCHED, grown_config(head_dim=4))


def test_grown_levels_hold_the_old_levels_and_the_stem_is_new():
    torch.manual_seed(0)
    old = SpaceTimeUNet(PATCHED).state_dict()
    new = SpaceTimeUNet(grown_config())
    weights = grow_weights(old, PATCHED, new.config)
    result = new.load_state_dict(weights, strict=False)
    assert not result.unexpected_keys
    fresh = set(result.missing_keys)  # the new level: its blocks, resampling, and the stem
    assert all(k.startswith(("conv_in.", "down.0.", "downsample.0.", "up.2.", "upsample.1.", "norm_out.",
                             "conv_out.")) for k in fresh)
    assert {"conv_in.weight", "down.0.0.res.conv1.weight", "up.2.0.res.conv1.weight", "conv_out.weight"} <= fresh
    assert torch.equal(new.down[1][0].res.conv1.weight, old["down.0.0.res.conv1.weight"])  # the old first level
    assert torch.equal(new.up[1][0].res.conv1.weight, old["up.1.0.res.conv1.weight"])  # ... on the way up
    assert torch.equal(new.downsample[1].conv.weight, old["downsample.0.conv.weight"])
    with pytest.raises(ValueError, match="cannot grow the network: patch_size"):
        grow_weights(old, PATCHED, grown_config(patch_size=2))


def test_training_from_a_grown_checkpoint(tmp_path):
    """`init_from` a run whose network lacks the finer level: the run starts with the old levels one level in."""
    patched = {"model.patch_size": 2}
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 1, **patched}))
    path = train(make_config("shapes-tiny", {"out": str(tmp_path / "b"), "steps": 1, "lr": "1e-12",
                                             "init_from": str(tmp_path / "a"), **GROWN}))
    a, b = checkpoint.load_weights(tmp_path / "a"), checkpoint.load_weights(path)
    assert checkpoint.load_config(path)["model"]["patch_size"] == 1
    assert (a["down.1.0.res.conv1.weight"] - b["down.2.0.res.conv1.weight"]).abs().max() < 1e-6
    assert (a["mid.0.res.conv1.weight"] - b["mid.0.res.conv1.weight"]).abs().max() < 1e-6
    assert b["conv_in.weight"].shape[1] == a["conv_in.weight"].shape[1] // 4  # full resolution: no patches
    with pytest.raises(ValueError, match="cannot grow the network"):  # one more level, but not a finer one
        train(make_config("shapes-tiny", {"out": str(tmp_path / "c"), "steps": 1, "init_from": str(tmp_path / "a"),
                                          "model.channels": "[8, 16, 32]"}))


def test_new_lr_trains_the_grown_level_alone_when_lr_is_tiny(tmp_path):
    """new_lr: the tensors init_from does not bring learn at their own rate (here the only one that moves them),
    also after a resume, which rebuilds the same optimizer groups."""
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 1, "model.patch_size": 2}))
    cfg = {"out": str(tmp_path / "b"), "lr": "1e-12", "new_lr": "1e-2", "init_from": str(tmp_path / "a"), **GROWN}
    train(make_config("shapes-tiny", {**cfg, "steps": 1}))
    first = checkpoint.load_weights(tmp_path / "b")
    train(make_config("shapes-tiny", {**cfg, "steps": 2}), resume=True)
    a, b = checkpoint.load_weights(tmp_path / "a"), checkpoint.load_weights(tmp_path / "b")
    assert (a["mid.0.res.conv1.weight"] - b["mid.0.res.conv1.weight"]).abs().max() < 1e-6  # trained: at lr
    assert b["conv_out.weight"].abs().max() > 1e-3  # new, zero-initialised: moved at new_lr
    assert (b["up.2.0.res.conv2.weight"] - first["up.2.0.res.conv2.weight"]).abs().max() > 1e-4  # resumed too
    with pytest.raises(ValueError, match="new_lr"):
        make_config("shapes-tiny", {"out": str(tmp_path / "c"), "new_lr": "1e-2"})


def test_a_run_checkpointed_before_new_lr_resumes(tmp_path):
    """Optimizer states saved before the groups carried `lr_scale` (one group) resume at lr."""
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 1}))
    state_file = checkpoint.resolve(tmp_path / "a") / "training_state.pt"
    state = torch.load(state_file, weights_only=True)
    for group in state["optimizer"]["param_groups"]:
        del group["lr_scale"]
    torch.save(state, state_file)
    train(make_config("shapes-tiny", {"out": str(tmp_path / "a"), "steps": 2}), resume=True)
    assert len(checkpoint.load_training_state(tmp_path / "a")["loss_history"]) == 2
