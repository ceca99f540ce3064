"""The motion planner: text -> motion hint, learned from the clips' measured motion (models/planner.py)."""

import math

import pytest
import torch

from conftest import tiny_checkpoint
from stillmotion.cond import Cond
from stillmotion.models.planner import DIRECTION_SNR, MAX_STD, MotionPlanner, PlannerEnsemble, plan_hint, plan_loss
from stillmotion.models.registry import build_unet
from stillmotion.models.unet import UNetConfig


def test_nll_prefers_the_right_mean_and_a_spread_that_fits():
    target = torch.tensor([[-0.3, 0.0], [0.0, 0.4]])
    right = torch.tensor([[-0.3, 0.0, math.log(0.05)], [0.0, 0.4, math.log(0.05)]])
    wrong = torch.tensor([[0.3, 0.0, math.log(0.05)], [0.0, -0.4, math.log(0.05)]])
    assert plan_loss(right, target) < plan_loss(wrong, target)
    # for a wrong mean, a wide plan is less wrong than a sure one
    wide = wrong.clone()
    wide[:, 2] = math.log(0.5)
    assert plan_loss(wide, target) < plan_loss(wrong, target)
    # weights: a zero-weight example does not count
    mixed = torch.stack([right[0], wrong[1]])
    assert torch.isclose(plan_loss(mixed, target, torch.tensor([1.0, 0.0])), plan_loss(right[:1], target[:1]) / 2)


def test_hint_only_where_the_plan_is_sure():
    plans = torch.tensor([[-0.4, 0.0, math.log(MAX_STD / 2)], [0.2, 0.3, math.log(MAX_STD * 2)]])
    hint = plan_hint(plans)
    assert hint.tolist()[0] == pytest.approx([-0.4, 0.0, 1.0])
    assert hint.tolist()[1] == [0.0, 0.0, 0.0]  # too unsure: no hint
    # unsure how far, sure which way (a direction without a speed word): far travel over its spread gives a hint
    wide = math.log(MAX_STD * 1.2)
    hint = plan_hint(torch.tensor([[0.0, -DIRECTION_SNR * MAX_STD * 1.3, wide], [0.3, 0.0, wide]]))
    assert hint[0, 2] == 1.0 and hint[0, 1] < 0
    assert hint[1].tolist() == [0.0, 0.0, 0.0]


def test_planner_learns_opposite_words_apart():
    """Two captions that differ in one token: the planner separates them from a few steps of its own loss."""
    torch.manual_seed(0)
    planner = MotionPlanner(8, hidden=32)
    text = torch.randn(1, 5, 8).repeat(2, 1, 1)
    text[1, 3] += 0.3 * torch.randn(8)  # "left" vs "right": close tokens in one slot
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[:, 4] = False  # padding must not matter
    target = torch.tensor([[-0.4, 0.0], [0.4, 0.0]])
    opt = torch.optim.Adam(planner.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        plan_loss(planner(text, mask), target).backward()
        opt.step()
    plan = planner(text, mask).detach()
    assert plan[0, 0] < -0.3 and plan[1, 0] > 0.3, plan
    assert torch.exp(plan[:, 2]).max() < MAX_STD  # sure of both, so both give a hint
    padded = text.clone()
    padded[:, 4] = 100.0
    assert torch.allclose(planner(padded, mask), planner(text, mask))


def test_network_plans_from_its_whitened_tokens_and_checks_config():
    net = build_unet("tiny", motion_cond=True, motion_planner=True, text_whiten=True)
    text, mask = torch.randn(3, 6, net.config.text_dim), torch.ones(3, 6, dtype=torch.bool)
    plan = net.plan_motion(text, mask)
    assert plan.shape == (3, 3)
    net.set_text_whitening(torch.randn(net.config.text_dim), 2 * torch.eye(net.config.text_dim))
    assert not torch.allclose(net.plan_motion(text, mask), plan)  # it reads what every layer reads
    with pytest.raises(ValueError, match="needs motion_cond"):
        UNetConfig(motion_planner=True)
    with pytest.raises(ValueError, match="without motion_planner"):
        build_unet("tiny", motion_cond=True).plan_motion(text, mask)


def test_ensemble_plans_the_average_of_its_heads():
    net = build_unet("tiny", motion_cond=True, motion_planner=True, planner_heads=3)
    assert isinstance(net.planner, PlannerEnsemble) and len(net.planner.heads) == 3
    assert any(k.startswith("planner.heads.2.") for k in net.state_dict())
    text, mask = torch.randn(2, 6, net.config.text_dim), torch.ones(2, 6, dtype=torch.bool)
    each = net.planner.each(*net.text_tokens(text, mask))  # (K, B, 3)
    assert each.shape == (3, 2, 3) and not torch.allclose(each[0], each[1])  # initialised apart
    assert torch.allclose(net.plan_motion(text, mask), each.mean(0))
    assert isinstance(build_unet("tiny", motion_cond=True, motion_planner=True).planner, MotionPlanner)
    with pytest.raises(ValueError, match="planner_heads must be >= 1"):
        UNetConfig(motion_cond=True, motion_planner=True, planner_heads=0)
    with pytest.raises(ValueError, match="at least 2 heads"):
        PlannerEnsemble(8, 1)


def test_planner_heads_keep_their_own_init_in_the_network():
    """The U-Net's xavier init leaves the planners alone: heads from xavier's twice-as-wide weights overfit the
    fit's clips (models/unet.py `initialize_weights`)."""
    net = build_unet("tiny", motion_cond=True, motion_planner=True, planner_heads=2)
    for head in net.planner.heads:
        for layer in [head.score, *[m for m in head.mlp if isinstance(m, torch.nn.Linear)]]:
            bound = 1 / math.sqrt(layer.in_features)  # PyTorch's default: uniform in +-1/sqrt(fan_in)
            assert 0.9 * bound < layer.weight.abs().max() <= bound


def test_image_weights_inflate_into_a_planner_model():
    image = build_unet("tiny", temporal=False)
    video = build_unet("tiny", motion_cond=True, motion_planner=True)
    new = video.inflate(image.state_dict())
    assert any(k.startswith("planner.") for k in new)


def test_the_planner_loss_trains_the_planner(tmp_path):
    from stillmotion.pipelines.text_to_video import TextToVideo
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import train

    overrides = {"steps": 3, "ema_decay": 0.0, "model.motion_cond": True, "model.motion_planner": True}
    run = train(make_config("shapes-tiny", {**overrides, "out": str(tmp_path / "m")}))
    unused = train(make_config("shapes-tiny", {**overrides, "out": str(tmp_path / "u"), "planner_weight": 0.0}))
    planned, idle = (TextToVideo.from_pretrained(r).denoiser.net.planner for r in (run, unused))
    assert any(not torch.allclose(a, b) for a, b in zip(planned.parameters(), idle.parameters()))  # its loss trains it


def test_plan_sample_and_judge_the_planner(tmp_path):
    """Tiny untrained components, perturbed so the zero-initialised hint branch reaches the output, with a planner
    made sure that everything moves left (its last layer a constant)."""
    from stillmotion.data.captions import DIRECTIONS
    from stillmotion.eval.prompt_following import evaluate_prompt_following, single_object_prompts
    from stillmotion.pipelines.text_to_video import TextToVideo

    pipe = TextToVideo.from_pretrained(tiny_checkpoint(
        tmp_path / "m", frames=4, model={"motion_cond": True, "motion_planner": True}, perturb=0.05))
    with torch.no_grad():
        pipe.denoiser.net.planner.mlp[-1].weight.zero_()
        pipe.denoiser.net.planner.mlp[-1].bias.copy_(torch.tensor([-0.4, 0.0, -3.0]))  # left, log std -3
    plan = pipe.plan(["a red circle moving left", "a blue square moving up"])
    assert torch.allclose(plan, torch.tensor([[-0.4, 0.0, 1.0, math.exp(-3.0)]] * 2))
    kw = dict(sampling=pipe.sampling.merged(steps=2), progress=False)
    unguided = dict(sampling=pipe.sampling.merged(steps=2, guidance=1.0), progress=False)  # the prompt's branch only
    video = pipe("a red circle moving up", **unguided)
    assert video.shape == (1, 3, 4, 16, 16)
    assert torch.equal(video, pipe("a red circle moving up", motion="-0.4,0", **unguided))  # the plan's hint
    assert not torch.equal(video, pipe("a red circle moving up", motion="none", **unguided))
    # guided, the plan steers the prompt's branch only; a hint given by hand conditions both
    assert not torch.equal(pipe("a red circle moving up", **kw), pipe("a red circle moving up", motion="-0.4,0", **kw))
    report = evaluate_prompt_following(pipe, n=16, sampling=pipe.sampling.merged(steps=1), split="heldout",
                                       progress=False)
    asked = [t["direction"] for _, t in single_object_prompts(16, split="heldout") if t["direction"] in DIRECTIONS]
    assert "left" in asked and len(set(asked)) > 1
    assert report["planner"]["hint_given"] == 1.0
    assert report["planner"]["direction_accuracy"] == pytest.approx(asked.count("left") / len(asked))
    by_word = report["by_direction_word"]
    assert by_word["with_heldout_direction_word"]["n"] + by_word["without"]["n"] == 16
    plain = TextToVideo.from_pretrained(tiny_checkpoint(tmp_path / "p", frames=4))
    assert "planner" not in evaluate_prompt_following(plain, n=2, sampling=plain.sampling.merged(steps=1),
                                                      progress=False)
    with pytest.raises(ValueError, match="no motion planner"):
        plain.plan("a red circle")
    assert plain("a red circle", sampling=plain.sampling.merged(steps=2), motion="none",
                 progress=False).shape == (1, 3, 4, 16, 16)


def test_planner_loss_is_zero_weighted_for_dropped_captions():
    """The loop's planner term counts only examples that kept their caption (an empty prompt says nothing)."""
    plan = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    spoken = torch.tensor([0.0, 1.0])
    assert plan_loss(plan, target, spoken) == pytest.approx(0.0)
    assert Cond(motion=torch.zeros(2, 3)).batch_size == 2


@pytest.mark.parametrize("heads", [1, 2])
def test_fit_planner_reads_directions_from_the_clips_flow(heads):
    """A fresh planner fitted alone on 400 clips of a left/right world: the measured motion (optical flow, not
    labels) teaches it the direction words, also in captions it never saw, the same way for the same seed; an
    ensemble's heads each learn them, on batches of their own."""
    from stillmotion.models.text import TextEncoder
    from stillmotion.train.batches import make_source
    from stillmotion.train.config import make_config
    from stillmotion.train.planner_fit import fit_planner

    source = make_source(make_config("shapes-tiny", {"frames": 8, "size": 32, "p_two": 0,
                                                     "world_options": '{"motions": ["left", "right"]}'}))
    text = TextEncoder()
    prompts = ["a red circle moving left", "a red circle moving right", "a blue square drifting to the left",
               "a green ball heading right"]
    plans = []
    for _ in range(2):
        torch.manual_seed(0)
        net = build_unet("tiny", motion_cond=True, motion_planner=True, planner_heads=heads, text_dim=text.dim)
        record = fit_planner(net, text, source, list(range(400)), steps=300, batch=64)
        plans.append(net.plan_motion(*text.encode(prompts)).detach())
    assert record["clips"] == 400 and record["steps"] == 300 and record["heads"] == heads
    dx = plans[0][:, 0]
    assert dx[0] < -0.1 and dx[1] > 0.1 and dx[2] < -0.1 and dx[3] > 0.1, plans[0]
    assert torch.equal(plans[0], plans[1])
    if heads > 1:
        each = net.planner.each(*net.text_tokens(*text.encode(prompts))).detach()  # (K, B, 3)
        assert (each[:, [0, 2], 0] < 0).all() and (each[:, [1, 3], 0] > 0).all(), each  # every head, the sign
        assert not torch.allclose(each[0], each[1])
