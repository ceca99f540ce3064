"""Synthetic worlds: determinism, labels that agree with the pixels, captions that vary, a CLI preview."""

import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from stillmotion.data import captions as cap
from stillmotion.data.captions import DIRECTIONS, canonical_caption, make_caption, parse_prompt
from stillmotion.data.digits import DigitsWorld, digit_images, split_indices
from stillmotion.data.shapes import COLOURS, MOTIONS, ShapesWorld, bounces, labels_from_attributes
from stillmotion.data.worlds import get_world, sample_batch


def track(video, rgb):
    """Per-frame area (F,) and centroid (F, 2) as (x, y) of the pixels drawn exactly in `rgb`."""
    mask = np.all(video == np.asarray(rgb, np.uint8), axis=-1)                 # (F, H, W)
    ys, xs = np.mgrid[0:video.shape[1], 0:video.shape[2]]
    area = mask.sum(axis=(1, 2))
    centroid = np.stack([(mask * xs).sum((1, 2)), (mask * ys).sum((1, 2))], -1) / np.maximum(area, 1)[:, None]
    return area, centroid


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_determinism(name):
    world = get_world(name, p_two=0.5)
    a, b, c = world.sample(7), world.sample(7), world.sample(8)
    assert a.video.shape == (16, 32, 32, 3) and a.video.dtype == np.uint8
    assert np.array_equal(a.video, b.video) and a.caption == b.caption and a.labels == b.labels
    assert not np.array_equal(a.video, c.video)
    assert np.array_equal(world.render(a.labels), a.video)                    # pixels follow from the labels
    held = get_world(name, p_two=0.5, caption_split="heldout").sample(7)      # same clip, other words
    assert np.array_equal(held.video, a.video) and held.labels == a.labels


@pytest.mark.parametrize("colour", list(COLOURS))
def test_drawn_colour_is_the_labelled_rgb(colour):
    video = ShapesWorld().render(labels_from_attributes(colour, "square", "static"))
    assert tuple(video[0, 16, 16]) == COLOURS[colour]
    area, _ = track(video, COLOURS[colour])
    assert area.min() > 40 and (area == area[0]).all()


@pytest.mark.parametrize("motion", list(DIRECTIONS))
def test_centroid_moves_in_the_labelled_direction(motion):
    world = ShapesWorld(p_two=0.0)
    for speed, shape in (("slow", "circle"), ("fast", "triangle")):
        video = world.render(labels_from_attributes("red", shape, motion, speed))
        area, centroid = track(video, COLOURS["red"])
        step = centroid[-1] - centroid[0]
        dx, dy = DIRECTIONS[motion]
        assert area.min() > 10
        for d, s in ((dx, step[0]), (dy, step[1])):
            assert (s > 5) if d > 0 else (s < -5) if d < 0 else abs(s) < 0.5


def test_sampled_clips_agree_with_their_labels():
    world = ShapesWorld(p_two=0.0)
    seen = set()
    for seed in range(150):
        clip = world.sample(seed)
        (obj,) = clip.labels.objects
        seen.add(obj.motion)
        area, centroid = track(clip.video, COLOURS[obj.colour])
        assert area.min() > 0, f"seed {seed}: object vanished"
        move = centroid[-1] - centroid[0]
        if obj.motion in DIRECTIONS:
            dx, dy = DIRECTIONS[obj.motion]
            assert np.sign(np.round(move)).tolist() == [dx, dy], (seed, obj.motion, move)
            ink = clip.video.astype(np.float64).sum(axis=(1, 2, 3)) / sum(COLOURS[obj.colour])  # coverage
            assert ink.min() > 0.95 * ink.max(), f"seed {seed}: clipped by the border"
        elif obj.motion == "static":
            assert np.abs(centroid - centroid[0]).max() < 1e-9 and (area == area[0]).all()
        elif obj.motion == "growing":
            assert area[-1] > 1.5 * area[0]
        elif obj.motion == "shrinking":
            assert area[0] > 1.5 * area[-1]
        elif obj.motion == "rotating":
            assert obj.shape != "circle"
            assert np.abs(centroid - centroid[0]).max() < 1.5
            assert not np.array_equal(clip.video[0], clip.video[len(clip.video) // 2])
        elif obj.motion == "bouncing":
            assert bounces(obj, world.frames)
            velocity = np.diff(centroid, axis=0)
            assert ((velocity[:-1] * velocity[1:]) < -0.01).any(), f"seed {seed}: no reversal"
    assert seen == set(MOTIONS)


def test_two_objects_get_distinct_colours_and_both_are_named():
    world = ShapesWorld(p_two=1.0)
    for seed in range(20):
        clip = world.sample(seed)
        a, b = clip.labels.objects
        assert a.colour != b.colour
        parsed = parse_prompt(re.split(r" and (?=an? )", canonical_caption(clip.labels))[1])  # "and a", "and an"
        assert parsed["colour"] == b.colour


def test_caption_variety_and_heldout_split_is_disjoint():
    labels = labels_from_attributes("red", "circle", "left", "slow")
    rng = np.random.default_rng(0)
    train = [make_caption(labels, rng, "train") for _ in range(200)]
    assert len(set(train)) >= 20
    heldout = [make_caption(labels, rng, "heldout") for _ in range(200)]
    assert not set(train) & set(heldout)
    # Nothing that marks a held-out sentence shape or word ever appears in training captions.
    markers = {frame.replace("{c}", "").strip(" ,:?") for _, frame in cap.HELDOUT_FRAMES} - {""}
    markers |= {w for k in ("colour", "shape", "direction", "speed") for ws in cap.HELDOUT_WORDS[k].values()
                for w in ws}
    markers |= set(cap.PASSIVE_VERBS) | {"?"}
    world = ShapesWorld(p_two=0.3, background="mixed")
    corpus = train + [world.sample(s).caption for s in range(400)]
    corpus += [DigitsWorld(coloured=True, p_two=0.3).sample(s).caption for s in range(200)]
    for marker in markers:
        pattern = re.compile(rf"(^|[^\w-]){re.escape(marker)}($|[^\w-])")
        hits = [c for c in corpus if pattern.search(c)]
        assert not hits, f"held-out marker {marker!r} in a training caption: {hits[0]!r}"
    assert len(cap.TRAIN_FRAMES) >= 30 and len(cap.HELDOUT_FRAMES) >= 20


def _heldout_word_markers() -> set[str]:
    """Every word or phrase of HELDOUT_WORDS (verb triples and digit patterns spelled out), and the compass stems
    of the held-out direction words ("north" would teach "northward" through its word pieces)."""
    markers = set()
    for values in cap.HELDOUT_WORDS.values():
        for words in values.values():
            for w in words:
                for phrase in (w if isinstance(w, tuple) else (w,)):
                    markers |= {phrase.format(d=d, w=cap.DIGIT_NAMES[d]) for d in range(10)}
    return markers | {"north", "south", "east", "west"}


def test_train_captions_use_no_heldout_frame_word_or_form():
    # every held-out word (verbs and digit phrases too), frame and clause form stays out of the train split
    markers = _heldout_word_markers() | set(cap.PASSIVE_VERBS) | {"?"}
    markers |= {frame.replace("{c}", "").strip(" ,:?") for _, frame in cap.HELDOUT_FRAMES} - {""}
    assert not {form for form, _ in cap.TRAIN_FRAMES} & {"base", "passive"}  # the held-out clause forms
    assert not {frame for _, frame in cap.TRAIN_FRAMES} & {frame for _, frame in cap.HELDOUT_FRAMES if frame != "{c}"}
    rng = np.random.default_rng(1)
    corpus = [make_caption(labels_from_attributes(colour, shape, motion, speed), rng, "train")
              for colour in ("red", "white") for shape in ("circle", "ring") for motion in MOTIONS
              for speed in ("slow", "fast") for _ in range(25)]
    corpus += [ShapesWorld(p_two=0.5, background="mixed").sample(s).caption for s in range(1000)]
    corpus += [DigitsWorld(coloured=True, p_two=0.3).sample(s).caption for s in range(300)]
    for marker in markers:
        pattern = re.compile(rf"(^|[^\w-]){re.escape(marker)}($|[^\w-])")
        hits = [c for c in corpus if pattern.search(c)]
        assert not hits, f"held-out marker {marker!r} in a training caption: {hits[0]!r}"


def test_parse_prompt_recovers_attributes():
    for colour in COLOURS:
        for shape in ("circle", "square", "triangle"):
            for motion in MOTIONS:
                text = canonical_caption(labels_from_attributes(colour, shape, motion, "fast"))
                got = parse_prompt(text)
                assert (got["colour"], got["shape"], got["motion"]) == (colour, shape, motion), text
    assert parse_prompt("hello world") is None
    for split in ("train", "heldout"):  # best effort on varied wordings
        world = ShapesWorld(p_two=0.0, caption_split=split)
        clips = [world.sample(s) for s in range(200)]
        right = [parse_prompt(c.caption) or {} for c in clips]
        right = [(p.get("colour"), p.get("shape"), p.get("motion")) ==
                 (c.labels.objects[0].colour, c.labels.objects[0].shape, c.labels.objects[0].motion)
                 for p, c in zip(right, clips)]
        assert np.mean(right) > 0.9, split


def test_sample_batch_and_registry():
    world = get_world("shapes", size=24, frames=8)
    videos, captions, labels = sample_batch(world, [0, 1, 2])
    assert videos.shape == (3, 3, 8, 24, 24) and videos.dtype == torch.float32
    assert videos.min() >= -1 and videos.max() <= 1 and len(captions) == len(labels) == 3
    with pytest.raises(ValueError, match="shapes, digits"):
        get_world("clouds")
    with pytest.raises(ValueError, match="motion"):
        ShapesWorld(motions=["sideways"])


@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_a_clip_does_not_depend_on_the_clips_rendered_before(name):
    """A clip is a function of its seed alone, whatever a world rendered before: DataLoader workers and resumed
    runs render the same clips in other orders. (Render speed is not asserted: on a shared machine a wall clock
    measures the machine.)"""
    seeds = list(range(12))
    forward = [get_world(name, p_two=0.5).sample(s) for s in seeds]
    world = get_world(name, p_two=0.5)
    backward = [world.sample(s) for s in reversed(seeds)][::-1]
    for a, b in zip(forward, backward):
        assert np.array_equal(a.video, b.video) and a.caption == b.caption and a.labels == b.labels


def test_digits_world():
    images, targets = digit_images()
    assert images.shape == (1797, 8, 8)
    train, held = split_indices("train"), split_indices("heldout")
    assert not set(train) & set(held) and len(train) + len(held) == 1797
    world = DigitsWorld(image_split="heldout")
    for seed in range(20):
        (obj,) = world.sample(seed).labels.objects
        assert obj.image_index in set(held) and obj.digit == targets[obj.image_index]
    for motion in DIRECTIONS:
        video = world.render(world.labels_from_attributes(7, motion, "fast"))
        bright = video.max(-1) > 120
        ys, xs = np.mgrid[0:32, 0:32]
        cx, cy = [(bright * g).sum((1, 2)) / bright.sum((1, 2)) for g in (xs, ys)]
        dx, dy = DIRECTIONS[motion]
        for d, s in ((dx, cx[-1] - cx[0]), (dy, cy[-1] - cy[0])):
            assert (s > 5) if d > 0 else (s < -5) if d < 0 else abs(s) < 1.5, (motion, s)
    static = world.render(world.labels_from_attributes(3, "static"))
    assert (static == static[0]).all() and static.max() > 200
    caption = DigitsWorld().sample(3).caption
    labels = DigitsWorld().sample(3).labels
    assert parse_prompt(caption).get("digit") == labels.objects[0].digit


def test_cli_data_preview(tmp_path):
    out = tmp_path / "sub" / "p.gif"
    argv = ["data", "preview", "--world", "digits", "--n", "4", "--frames", "6", "--size", "24",
            "--out", str(out)]
    run = subprocess.run([sys.executable, "-m", "stillmotion.cli", *argv], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size > 0 and out.with_suffix(".png").stat().st_size > 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    from stillmotion.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "preview", "--n", "1", "--frames", "2", "--out", str(blocker / "p.gif")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "p.gif" in err


def test_canonical_caption_article():
    assert cap.canonical_caption(labels_from_attributes("orange", "circle", "left", "slow"), speed=False) == \
        "an orange circle moving left"
    assert cap.canonical_caption(labels_from_attributes("red", "ring", "up", "slow"), speed=False) == \
        "a red ring moving up"
