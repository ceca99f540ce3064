"""SamplingConfig: the one typed way sampling settings are saved, read and changed (pipelines/sampling.py)."""

import json

import pytest
import torch

from conftest import tiny_checkpoint
from stillmotion.pipelines.sampling import SamplingConfig
from stillmotion.pipelines.text_to_video import TextToVideo
from stillmotion.train.config import make_config, model_sampling


def test_an_old_entry_reads_with_the_defaults_and_the_trained_noise_warp():
    old = SamplingConfig.from_dict({"strategy": "keyframe"}, noise_warp=1)  # checkpoints saved before the config
    assert old == SamplingConfig(strategy="keyframe", noise_warp=1.0)
    assert SamplingConfig.from_dict(old.to_dict()) == old  # a round trip through config.json
    assert json.loads(json.dumps(old.to_dict())) == old.to_dict()
    assert SamplingConfig.from_dict({"guidance": 3}).guidance == 3.0  # JSON's 3 is a number too


@pytest.mark.parametrize("change, message", [
    (dict(sampler="rk4"), "unknown sampler 'rk4'"),
    (dict(steps=0), "steps must be >= 1"),
    (dict(guidance=float("inf")), "guidance must be a finite number"),
    (dict(schedule="vp"), "choose karras or loglinear"),
    (dict(strategy="sideways"), "unknown strategy 'sideways'"),
    (dict(noise_warp=1.5), r"noise_warp must be in \[0, 1\]"),
    (dict(step=3), "unknown setting"),
])
def test_impossible_settings_are_refused_in_one_line(change, message):
    with pytest.raises(ValueError, match=message) as error:
        SamplingConfig().merged(**change)
    assert "\n" not in str(error.value)


def test_merged_keeps_what_is_not_given():
    base = SamplingConfig(strategy="keyframe", steps=12)
    assert base.merged(steps=None, guidance=None) == base  # CLI flags left out
    assert base.merged(guidance=2) == SamplingConfig(strategy="keyframe", steps=12, guidance=2.0)
    with pytest.raises(ValueError, match="wrong type|expected|must be"):
        SamplingConfig.from_dict({"steps": "ten"})


def test_the_checkpoint_entry_is_what_a_call_uses(tmp_path):
    """The model's own settings come from its config.json; a call without `sampling` uses them, and passing them
    explicitly changes nothing."""
    folder = tiny_checkpoint(tmp_path / "m", frames=4, perturb=0.05)
    config = json.loads((folder / "config.json").read_text())
    config["sampling"] = {"strategy": "joint", "steps": 3, "sampler": "euler", "guidance": 2.0}
    (folder / "config.json").write_text(json.dumps(config))
    pipe = TextToVideo.from_pretrained(folder)
    assert pipe.sampling == SamplingConfig(steps=3, sampler="euler", guidance=2.0)
    seen = []
    plain = pipe("a red circle moving left", seed=1, progress=False, callback=seen.append)
    assert len(seen) == 3
    assert torch.equal(plain, pipe("a red circle moving left", sampling=pipe.sampling, seed=1, progress=False))
    other = pipe("a red circle moving left", sampling=pipe.sampling.merged(guidance=5.0), seed=1, progress=False)
    assert not torch.equal(plain, other)  # and the override reaches the sampler


def test_training_saves_what_generate_and_the_previews_use():
    cfg = make_config("shapes-tiny", {"noise_warp": "1", "sampling.strategy": "joint", "model.motion_cond": "true"})
    assert model_sampling(cfg) == SamplingConfig(steps=2, noise_warp=1.0)  # previews of a warped-noise model warp too
