"""Frame tasks (t2v / i2v / predict / interpolate): masks, batches, the loss mask, and first-frame sampling."""

import pytest
import torch

from conftest import tiny_checkpoint
from stillmotion.pipelines.sampling import SamplingConfig
from stillmotion.train.batches import make_batch, make_source
from stillmotion.train.config import make_config
from stillmotion.train.loop import checkpoint_config
from stillmotion.train.tasks import TASKS, draw_task, task_frame_mask


class Words:
    """A stand-in text encoder: one token per caption, its length as the embedding (no MiniLM needed)."""

    dim = 4

    def encode(self, captions):
        emb = torch.tensor([[[float(len(c))] * self.dim] for c in captions])  # (B, 1, D)
        return emb, torch.ones(len(captions), 1, dtype=torch.bool)


@pytest.mark.parametrize("frames", [1, 2, 3, 4, 7, 16])
def test_masks_leave_something_to_predict(frames):
    g = torch.Generator().manual_seed(0)
    for task in TASKS:
        for _ in range(50):
            m = task_frame_mask(task, frames, g)
            assert m.shape == (frames,) and set(m.tolist()) <= {0.0, 1.0}
            assert m.sum() < frames  # never all known
            if frames == 1 or task == "t2v":
                assert m.sum() == 0
            elif task in ("i2v", "predict"):  # a known prefix, frame 0 first
                k = int(m.sum())
                assert m[0] == 1 and m[:k].all() and not m[k:].any()
                assert k == 1 if task == "i2v" else 1 <= k <= frames // 2
            elif frames >= 3:  # interpolate: first and last known, a gap somewhere between
                assert m[0] == 1 and m[-1] == 1 and m.sum() >= 2


def test_keyframes_are_evenly_spaced():
    g = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(200):
        m = task_frame_mask("interpolate", 16, g)
        idx = tuple(torch.nonzero(m).flatten().tolist())
        gaps = torch.diff(torch.tensor(idx))
        assert gaps.max() - gaps.min() <= 1, idx
        seen.add(len(idx))
    assert seen == set(range(2, 9))  # 2..(F+1)//2 keyframes all occur


def test_tasks_are_drawn_in_proportion_to_their_weights():
    g = torch.Generator().manual_seed(0)
    weights = {"t2v": 0.5, "i2v": 0.3, "interpolate": 0.2}
    draws = [draw_task(weights, g) for _ in range(4000)]
    for task, w in weights.items():
        assert abs(draws.count(task) / len(draws) - w) < 0.03, (task, draws.count(task))
    assert "predict" not in draws


def test_batches_carry_known_frames_and_leave_them_out_of_the_loss():
    cfg = make_config("shapes-tiny", {"tasks": '{"t2v": 1, "i2v": 1, "predict": 1, "interpolate": 1}'})
    source = make_source(cfg)
    batch = make_batch(cfg, source, Words(), list(range(24)), "cpu")
    assert set(batch.tasks) == set(TASKS)
    assert torch.equal(batch.cond.frames, batch.x0)
    mask = batch.loss_mask  # (B, 1, F, 1, 1)
    assert mask.shape == (24, 1, cfg.frames, 1, 1)
    for task, known, m in zip(batch.tasks, batch.cond.frame_mask, mask[:, 0, :, 0, 0]):
        assert torch.equal(m, 1 - known)
        assert (known.sum() == 0) == (task == "t2v")
    # the same examples come out the same whichever batch they are in (ranks, resumption)
    again = make_batch(cfg, source, Words(), list(range(20, 24)), "cpu")
    assert again.tasks == batch.tasks[20:] and torch.equal(again.cond.frame_mask, batch.cond.frame_mask[20:])
    # text-to-video only: no known frames at all, so the network input is what it always was
    plain = make_batch(make_config("shapes-tiny"), source, Words(), [0, 1], "cpu")
    assert plain.cond.frames is None and plain.loss_mask is None and plain.tasks == ["t2v", "t2v"]
    assert torch.equal(plain.noise, batch.noise[:2]) and torch.equal(plain.sigma, batch.sigma[:2])


@pytest.mark.parametrize("overrides, message", [
    ({"tasks": '{"t2v": 1, "extend": 1}'}, "unknown task"),
    ({"tasks": '{"t2v": 0}'}, "positive sum"),
    ({"sampling.strategy": "first-frame"}, "i2v task"),
    ({"sampling.strategy": "backwards"}, "unknown strategy 'backwards'"),
])
def test_bad_task_settings_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_config("shapes-tiny", overrides)


def test_first_frame_strategy_keeps_the_joint_first_frame(tmp_path):
    """Tiny untrained components, perturbed so the network reads the known first frame of the second pass."""
    from stillmotion.models.registry import build_unet
    from stillmotion.pipelines.text_to_video import TextToVideo

    cfg = make_config("shapes-tiny", {"tasks": '{"t2v": 1, "i2v": 1}', "sampling.strategy": "first-frame"})
    saved = checkpoint_config(cfg, build_unet("tiny"), Words(), {})["sampling"]
    assert SamplingConfig.from_dict(saved) == SamplingConfig(steps=2, strategy="first-frame")
    pipe = TextToVideo.from_pretrained(tiny_checkpoint(tmp_path / "run", frames=4, tasks={"t2v": 1, "i2v": 1},
                                                       strategy="first-frame", perturb=0.05))
    assert pipe.sampling.strategy == "first-frame"  # the saved default
    two, kw = pipe.sampling.merged(steps=2), dict(seed=5, progress=False)
    joint = pipe(["a red circle moving left", "a blue square moving up"], sampling=two.merged(strategy="joint"), **kw)
    first = pipe(["a red circle moving left", "a blue square moving up"], sampling=two, **kw)  # the model's default
    assert first.shape == joint.shape == (2, 3, 4, 16, 16)
    assert torch.equal(first[:, :, 0], joint[:, :, 0])  # pass 2 starts from pass 1's frame 0, kept exactly
    assert not torch.equal(first[:, :, 1:], joint[:, :, 1:])  # and samples the rest again
    with pytest.raises(ValueError, match="unknown strategy"):
        two.merged(strategy="sideways")
    known = dict(known_frames=joint[:1], frame_mask=torch.tensor([[1.0, 0, 0, 0]]), **kw)  # known frames: one pass
    assert torch.equal(pipe("a red circle", sampling=two, **known),
                       pipe("a red circle", sampling=two.merged(strategy="joint"), **known))
