"""The batched torch renderer draws the same clips as the numpy worlds, from the same labels."""

import numpy as np
import pytest
import torch

from stillmotion.data.digits import DigitsWorld
from stillmotion.data.render_torch import labels_to_tensors, render, render_video
from stillmotion.data.shapes import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    SHAPES,
    ObjectLabels,
    SceneLabels,
    ShapesWorld,
    background_image,
    composite,
    coverage,
    labels_from_attributes,
)
from stillmotion.data.video_io import to_float
from stillmotion.data.worlds import sample_batch

F32_MAX_FRACTION = 1e-4  # float32: measured 1.2e-6 of the values off by one level (23 of 19.7M, 400 scenes)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Elementwise work on a few MB: one thread is fastest, and several spin badly on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shapes_scenes(n: int, seed: int = 0, **kwargs) -> tuple[ShapesWorld, list[SceneLabels]]:
    world = ShapesWorld(p_two=0.5, background="mixed", shapes=SHAPES, **kwargs)
    return world, [world.sample_labels(np.random.default_rng((seed, i))) for i in range(n)]


def level_difference(a: torch.Tensor, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape and a.dtype == torch.uint8
    return np.abs(a.numpy().astype(np.int16) - b.astype(np.int16))


@pytest.fixture(scope="module")
def shapes_batch():
    """400 scenes of every shape, motion, speed and background, one and two objects, with numpy's clips."""
    world, labels = shapes_scenes(400)
    objects = [o for s in labels for o in s.objects]
    assert {o.motion for o in objects} == set(MOTIONS) and {o.shape for o in objects} == set(SHAPES)
    assert {o.speed for o in objects} == {"slow", "fast", "none"}
    assert {s.background for s in labels} == set(BACKGROUNDS) and {len(s.objects) for s in labels} == {1, 2}
    return world, labels, np.stack([world.render(s) for s in labels])


def test_float64_equals_numpy_level_for_level(shapes_batch):
    world, labels, expected = shapes_batch
    video = render(labels_to_tensors(labels), world.frames, world.size, dtype=torch.float64)
    assert level_difference(video, expected).max() == 0


def test_float32_within_one_level_on_few_edge_pixels(shapes_batch):
    world, labels, expected = shapes_batch
    diff = level_difference(render(labels_to_tensors(labels), world.frames, world.size), expected)
    assert diff.max() <= 1 and (diff > 0).mean() <= F32_MAX_FRACTION


def test_digits_world_equals_numpy():
    world = DigitsWorld(p_two=0.5, background="mixed", motions=MOTIONS, coloured=True)
    labels = [world.sample_labels(np.random.default_rng((1, i))) for i in range(120)]
    expected = np.stack([world.render(s) for s in labels])
    scene = labels_to_tensors(labels)
    assert level_difference(render(scene, world.frames, world.size, dtype=torch.float64), expected).max() == 0
    diff = level_difference(render(scene, world.frames, world.size), expected)
    assert diff.max() <= 1 and (diff > 0).mean() <= F32_MAX_FRACTION


def test_mixed_worlds_empty_scenes_and_layer_order_in_one_batch():
    """Digits and shapes in one batch, scenes without objects, and a second object painted over the first."""
    shapes, digits = ShapesWorld(size=16, frames=5), DigitsWorld(size=16, frames=5)
    under = ObjectLabels("red", "square", "static", "none", 0.5, (0.5, 0.5))
    over = ObjectLabels("blue", "circle", "right", "fast", 0.3, (0.3, 0.5))
    labels = [SceneLabels((under, over), "noise", 3), SceneLabels((), "gradient", 4), SceneLabels((), "gray"),
              digits.labels_from_attributes(3, "up", background="noise"), SceneLabels((over, under), "black")]
    expected = np.stack([(digits if s.objects and s.objects[0].shape == "digit" else shapes).render(s)
                         for s in labels])
    video = render(labels_to_tensors(labels), 5, 16, dtype=torch.float64)
    assert level_difference(video, expected).max() == 0
    assert not np.array_equal(expected[0], expected[4])                          # the order shows


@pytest.mark.parametrize("frames, height, width", [(1, 16, 16), (6, 24, 40), (3, 40, 24)])
def test_any_frame_count_and_canvas_shape(frames, height, width):
    """Non-square canvases against shapes.coverage / composite directly (the worlds are square)."""
    _, labels = shapes_scenes(24, seed=2, frames=frames)
    expected = np.stack([composite(background_image(s.background, height, width, s.background_seed),
                                   [(coverage(o, frames, height, width), COLOURS[o.colour]) for o in s.objects])
                         for s in labels])
    video = render(labels_to_tensors(labels), frames, (height, width), dtype=torch.float64)
    assert level_difference(video, expected).max() == 0


def test_render_video_is_the_training_tensor():
    """render_video == worlds.sample_batch's videos (to_float of each clip): what make_batch trains on."""
    world = ShapesWorld(p_two=0.3, background="mixed")
    seeds = range(40, 72)
    videos, _, labels = sample_batch(world, seeds)
    out = render_video(labels_to_tensors(labels), world.frames, world.size, dtype=torch.float64)
    assert out.dtype == torch.float32 and torch.equal(out, videos)
    uint8 = render(labels_to_tensors(labels), world.frames, world.size)
    assert torch.equal(render_video(labels_to_tensors(labels), world.frames, world.size),
                       torch.stack([to_float(v) for v in uint8]))


def test_render_video_draws_into_a_reused_buffer():
    world, labels = shapes_scenes(12, seed=3)
    scene = labels_to_tensors(labels)
    buffer = torch.full((12, 3, world.frames, world.size, world.size), 7.0)
    out = render_video(scene, world.frames, world.size, out=buffer)
    assert out.data_ptr() == buffer.data_ptr() and torch.equal(out, render_video(scene, world.frames, world.size))
    with pytest.raises(ValueError, match="out must be"):
        render_video(scene, world.frames, world.size, out=buffer[:, :, :-1])


def test_runs_on_the_meta_device_so_nothing_reads_values_back():
    """On "meta" tensors have no values: any .item(), nonzero() or data-dependent branch would raise."""
    world, labels = shapes_scenes(16)
    digits = DigitsWorld(background="noise")
    labels.append(digits.sample_labels(np.random.default_rng(0)))
    scene = labels_to_tensors(labels)
    video = render(scene, world.frames, world.size, device="meta")
    assert video.device.type == "meta" and video.shape == (17, 16, 32, 32, 3) and video.dtype == torch.uint8
    assert render_video(scene, 4, 8, device="meta").shape == (17, 3, 4, 8, 8)


def test_device_batches_stay_on_the_device():
    scene = labels_to_tensors([labels_from_attributes("red", "circle", "left")])
    moved = scene.to("meta")
    assert moved.objects.device.type == "meta" and scene.objects.device.type == "cpu" and len(moved) == 1


@pytest.mark.parametrize("labels, match", [
    ([], "at least one scene"),
    ([SceneLabels((ObjectLabels("red", "hexagon", "static", "none", 0.3, (0.5, 0.5)),))], "unknown shape"),
    ([SceneLabels((ObjectLabels("red", "circle", "teleporting", "slow", 0.3, (0.5, 0.5)),))], "unknown motion"),
    ([SceneLabels((ObjectLabels("teal", "circle", "static", "none", 0.3, (0.5, 0.5)),))], "unknown colour"),
    ([SceneLabels((), "stripes")], "unknown background"),
])
def test_bad_labels_say_what_is_wrong(labels, match):
    with pytest.raises(ValueError, match=match):
        labels_to_tensors(labels)


def test_bad_canvas():
    with pytest.raises(ValueError, match="frames >= 1"):
        render(labels_to_tensors([SceneLabels(())]), 0, 16)
