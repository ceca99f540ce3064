"""Trajectory anchoring: frames become an anchor frame moved along the motion, at every level from the asked noise
level down, only where a motion is known; the anchor is a frame that shows the object whole, and the path is moved
to keep the object on the canvas."""

import pytest
import torch

from stillmotion.diffusion.schedules import get_sigmas
from stillmotion.diffusion.trajectory import anchor_mask, best_anchor, follow_trajectory, object_map, path_offset


def test_frames_become_the_anchor_moved_and_what_leaves_one_edge_enters_at_the_other():
    x = torch.randn(2, 3, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    out = follow_trajectory(x, torch.tensor([[-0.25, 0.0], [0.25, 0.5]]), torch.tensor([True, False]), anchor_frame=0)
    assert torch.equal(out[1], x[1])  # not anchored: untouched
    assert torch.equal(out[0, :, 0], x[0, :, 0])  # frame 0 is the anchor
    # clip 0 moves a quarter of 32 px left over the clip: frame 15 is frame 0 moved 8 px left ...
    assert torch.equal(out[0, :, 15, :, :24], x[0, :, 0, :, 8:])
    assert torch.equal(out[0, :, 15, :, 24:], x[0, :, 0, :, :8])  # ... its left 8 columns enter on the right
    assert torch.equal(out[0, :, 8, :, :28], x[0, :, 0, :, 4:])  # u = 8/15 of 8 px = 4 px at frame 8
    down = follow_trajectory(x, torch.tensor([[0.0, 0.5], [0.0, 0.0]]))  # anchored on the middle frame, 8
    assert torch.equal(down[0, :, 8], x[0, :, 8])
    # frames are shifted round(16 px * f/15) from frame 0's place: frame 8 by 9, frame 15 by 16
    assert torch.equal(down[0, :, 15, 7:], x[0, :, 8, :25])  # frame 15: 7 px below frame 8
    assert torch.equal(down[0, :, 0, :23], x[0, :, 8, 9:])  # frame 0: 9 px above it
    assert torch.equal(down[0, :, 0], torch.roll(x[0, :, 8], -9, dims=-2))  # every frame: the anchor's own pixels
    assert torch.equal(down[1], x[1, :, 8:9].expand_as(x[1]))  # anchored with no motion: a still clip
    assert torch.equal(follow_trajectory(x[:, :, :1], torch.ones(2, 2)), x[:, :, :1])  # one frame: nothing moves


def test_the_anchor_is_the_frame_whose_path_stays_on_the_canvas():
    x0 = torch.full((3, 3, 16, 32, 32), -1.0)  # black clips ...
    x0[0, 0, :, 12:16, 26:30] = 1.0  # ... clip 0: a red square near the right edge in every frame
    x0[1, 0, :, 14:18, 14:18] = 1.0  # clip 1: one in the middle
    x0[2, 2, :, 1:5, 14:18] = 0.8    # clip 2: a blue one near the top
    content = object_map(x0)
    assert content.shape == (3, 16, 32, 32) and content[0, :, 12:16, 26:30].min() > 1.9
    assert content[0].sum() == content[0, :, 12:16, 26:30].sum()  # the background is not object
    right, up = torch.tensor([0.5, 0.0]), torch.tensor([0.0, -0.5])
    anchors = best_anchor(content, torch.stack([right, right, up]))
    # moving right from near the right edge: anchor on a late frame (the nearest the middle of those whose path
    # wraps nothing: 13, 14 and 15 are shifted at most 2 px further), the path runs leftwards back from it
    assert anchors[0] == 13 and anchors[1] == 8  # room either way: the middle frame
    assert anchors[2] == 14  # moving up from near the top: a late frame too
    out = follow_trajectory(x0, torch.stack([right, right, up]), anchor_frame=anchors)
    assert out[0, 0, :, :, :4].max() == -1.0  # nothing wrapped to the left edge
    assert torch.equal(out[1], follow_trajectory(x0[1:2], right[None])[0])  # per-clip anchors = the default there


def test_a_frame_with_a_faint_object_or_a_second_copy_is_never_the_anchor():
    x0 = torch.full((2, 3, 16, 32, 32), -1.0)
    x0[0, 0, :, 12:16, 26:30] = 1.0  # a red square near the right edge ...
    x0[0, 0, 13:, 12:16, 26:30] = -0.6  # ... drawn faintly in the last three frames (contrast 0.4 of 2)
    x0[1, 2, :, 14:18, 14:18] = 1.0  # a blue square in the middle ...
    x0[1, 2, 6:11, 4:8, 4:8] = 1.0  # ... and a second copy in frames 6-10
    content = object_map(x0)
    assert content[0, 13:].sum() > 0  # still object, but under half the others' content
    right = torch.tensor([[0.5, 0.0], [0.5, 0.0]])
    # moving right: frames 13-15 wrap nothing (the test above), but anchored on one the clip shows the faint object;
    # of the frames with the whole object, 12 wraps the smallest share of it. Clip 1 has room either way: of the
    # frames with one copy, the nearest the middle (5 and 11 are as near; the earlier wins)
    assert best_anchor(content, right).tolist() == [12, 5]
    assert best_anchor(content[:1], right[:1], whole=(0.1, 1.5)).tolist() == [13]  # faint ones allowed
    assert best_anchor(torch.zeros(1, 16, 32, 32), right[:1]).tolist() == [8]  # no object: the middle frame


def test_an_object_drawn_in_few_frames_is_still_anchored_on_one_of_them():
    x0 = torch.full((1, 3, 16, 32, 32), -1.0)
    x0[0, 1, 2:7, 14:18, 10:14] = 1.0  # a green square in frames 2-6 only: the median frame is empty
    content = object_map(x0)
    anchor = best_anchor(content, torch.tensor([[0.5, 0.0]])).item()
    assert 2 <= anchor <= 6  # anchored on an empty frame, the clip would lose the object
    assert follow_trajectory(x0, torch.tensor([[0.5, 0.0]]), anchor_frame=torch.tensor([anchor]))[0, 1].max() == 1.0


def test_only_known_motions_that_travel_are_anchored():
    d = torch.tensor([[-0.3, 0.0], [0.1, 0.1], [0.4, 0.4], [0.0, 0.0]])
    given = torch.tensor([True, True, False, True])
    assert anchor_mask(d, given).tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="expected \\(2, 2\\)"):
        follow_trajectory(torch.zeros(2, 3, 4, 8, 8), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="outside the clip's 4 frames"):
        follow_trajectory(torch.zeros(2, 3, 4, 8, 8), torch.zeros(2, 2), anchor_frame=4)


def test_path_offset_keeps_the_object_on_the_canvas_along_its_path():
    content = torch.zeros(4, 16, 32, 32)  # (B, F, H, W), the object where the anchor frame (8) shows it
    content[0, 8, 10:14, 26:30] = 1.0  # 4x4 near the right edge, moving right by 8 px: 4 px too far
    content[1, 8, 2:6, 2:6] = 1.0  # near the top-left corner, moving up-left
    content[2, 8, 12:16, 12:16] = 1.0  # in the middle: its path fits as it is
    content[3, 8, 4:28, 10:14] = 1.0  # 24 rows tall, moving down 16: cannot fit, centred
    content[0, 8, 0, 0] = content[2, 8, 31, 31] = 0.02  # a stray pixel does not stretch the box
    displacement = torch.tensor([[0.25, 0.0], [-0.25, -0.25], [0.25, 0.25], [0.0, 0.5]])
    anchor = torch.full((4,), 8)
    offset = path_offset(content, displacement, anchor)
    assert offset.tolist() == [[-2, 0], [2, 2], [0, 0], [0, 1]]
    video = follow_trajectory(content[:, None].expand(-1, 3, -1, -1, -1), displacement, None, anchor, offset)
    for i in range(3):  # the whole path on the canvas: the object neither wraps nor loses a pixel in any frame
        whole = video[i, 0] >= 1.0  # (F, H, W)
        assert whole.sum(dim=(1, 2)).tolist() == [16] * 16
        cols = whole.any(dim=1)  # (F, W)
        assert not (cols[:, 0] & cols[:, -1]).any() and not (whole.any(dim=2)[:, 0] & whole.any(dim=2)[:, -1]).any()
    assert path_offset(torch.zeros(1, 16, 32, 32), displacement[:1], anchor[:1]).tolist() == [[0, 0]]  # nothing


def test_pipeline_anchors_at_the_asked_level_with_the_hint(tmp_path, monkeypatch):
    from stillmotion.pipelines import text_to_video
    from stillmotion.train.config import make_config
    from stillmotion.train.loop import train

    run = train(make_config("shapes-tiny", {"steps": 1, "model_overrides": {"motion_cond": True},
                                            "out": str(tmp_path / "m")}))
    pipe = text_to_video.TextToVideo.from_pretrained(run)
    assert pipe.trajectory_sigma == 0.0  # off unless the model's config or the caller asks
    calls, events = [], []  # events: the sampler's noise levels in order, and "anchor" where anchoring ran
    real = text_to_video.follow_trajectory

    def spy(x, d, a, anchor_frame, offset):
        calls.append((d.clone(), a.clone(), anchor_frame, offset))
        events.append("anchor")
        return real(x, d, a, anchor_frame, offset)
    monkeypatch.setattr(text_to_video, "follow_trajectory", spy)
    pipe("a red circle moving left", steps=10, motion="left", trajectory_sigma=1.0, progress=False,
         callback=lambda info: events.append(float(info["sigma"])))
    below = int((get_sigmas("karras", 10)[1:-1] <= 1.0).sum())  # the levels the sampler stops at, <= 1
    assert 2 <= below == len(calls) and all(c[0][0, 0] < 0 and c[1].tolist() == [True] for c in calls)
    assert all(c[2].shape == (1,) and 0 <= c[2][0] < pipe.frames for c in calls)  # an anchor frame per clip
    assert all(c[3].shape == (1, 2) and c[3].dtype == torch.long for c in calls)  # and a path offset
    assert len(events) == 10 + below  # the same 10 steps, the sampler stopped at every anchoring
    at = events.index("anchor")
    assert events[at - 1] > 1.0 >= events[at + 1]  # anchored before the first step at a level <= 1
    assert all(events[i + 1] <= 1.0 for i, e in enumerate(events) if e == "anchor")  # then on each later level
    pipe("a red circle", steps=10, motion="static", trajectory_sigma=1.0, progress=False)  # travels 0: not anchored
    pipe("a red circle moving left", steps=10, motion="left", progress=False)  # off by default
    assert len(calls) == below
    with pytest.raises(ValueError, match="trajectory_sigma must be >= 0"):
        pipe("a red circle", steps=1, trajectory_sigma=-1.0, progress=False)
