"""Motion hints: measured from a clip's flow for training, given by the user for sampling (motion_cond)."""

import numpy as np
import pytest
import torch

pytest.importorskip("cv2")

from conftest import tiny_checkpoint  # noqa: E402
from stillmotion.cond import HINT_TRAVEL, Cond, motion_hint  # noqa: E402
from stillmotion.data.shapes import ShapesWorld  # noqa: E402
from stillmotion.models.registry import build_unet  # noqa: E402
from stillmotion.train.flow_consistency import clip_flow  # noqa: E402
from stillmotion.train.motion import motion_from_flow  # noqa: E402


@pytest.mark.parametrize("direction, sign", [("left", (-1, 0)), ("down", (0, 1)), ("up-right", (1, -1))])
def test_hint_from_flow_points_where_the_object_goes(direction, sign):
    world = ShapesWorld(size=32, frames=8, p_two=0.0, motions=[direction], speeds=["fast"])
    for seed in range(3):
        clip = world.sample(seed)
        hint = motion_from_flow(*clip_flow(clip.video))
        assert hint[2] == 1.0
        for axis in (0, 1):
            if sign[axis]:
                assert hint[axis] * sign[axis] > 0.25, (direction, hint)  # 0.5 of the canvas travelled
            else:
                assert abs(hint[axis]) < 0.08, (direction, hint)
    still = np.repeat(world.sample(0).video[:1], 8, axis=0)
    assert motion_from_flow(*clip_flow(still)).tolist() == [0.0, 0.0, 1.0]


def test_motion_hint_words_numbers_and_errors():
    assert motion_hint(None, 2).tolist() == [[0, 0, 0]] * 2
    assert motion_hint("left", 1).tolist() == [[-HINT_TRAVEL, 0, 1]]
    assert torch.allclose(motion_hint("0.1,-0.2", 1), torch.tensor([[0.1, -0.2, 1.0]]))
    assert torch.allclose(motion_hint((0.3, 0.0), 3)[2], torch.tensor([0.3, 0.0, 1.0]))
    with pytest.raises(ValueError, match="give a direction"):
        motion_hint("sideways", 1)


def test_network_reads_the_hint():
    torch.manual_seed(0)
    net = build_unet("tiny", motion_cond=True).eval()
    with torch.no_grad():  # zero-initialised outputs: give every branch weights so the hint can matter
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape) * 0.1 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
    x = torch.randn(2, 3, 4, 16, 16)
    with torch.no_grad():
        left = net(x, torch.zeros(2), Cond(motion=motion_hint("left", 2)))
        right = net(x, torch.zeros(2), Cond(motion=motion_hint("right", 2)))
        none = net(x, torch.zeros(2), Cond())
        zeros = net(x, torch.zeros(2), Cond(motion=torch.zeros(2, 3)))
    assert (left - right).abs().max() > 1e-4
    assert torch.equal(none, zeros)  # no hint is the all-zero row
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        net(x, torch.zeros(2), Cond(motion=torch.zeros(2, 2)))


def test_sample_with_a_hint_only_from_a_model_that_reads_one(tmp_path):
    """Tiny untrained components (training with hints: test_train.py, test_planner.py); perturbed weights, so the
    zero-initialised hint branch reaches the output."""
    from stillmotion.pipelines.text_to_video import TextToVideo

    hinted = TextToVideo.from_pretrained(tiny_checkpoint(tmp_path / "m", frames=4, model={"motion_cond": True},
                                                         perturb=0.05))
    two = hinted.sampling.merged(steps=2)
    video = hinted("a red circle moving left", sampling=two, motion="left", progress=False)
    assert video.shape == (1, 3, 4, 16, 16)
    assert not torch.equal(video, hinted("a red circle moving left", sampling=two, motion="right", progress=False))
    plain = TextToVideo.from_pretrained(tiny_checkpoint(tmp_path / "p", frames=4))
    with pytest.raises(ValueError, match="not trained with motion hints"):
        plain("a red circle", sampling=two, motion="left", progress=False)
