"""render="device": a synthetic world's labels and captions drawn on the host, its pixels by data/render_torch.py on
the training device. The same examples as render="host" (bit for bit with render_dtype float64), the same loop,
exact resume, the option saved with the run, and the combinations that need host clips refused in one line."""

import subprocess
import sys

import pytest
import torch

from stillmotion import checkpoint
from stillmotion.train.batches import MicroBatchClips, Scenes, make_batch, make_source
from stillmotion.train.config import make_config
from stillmotion.train.loop import train


class Words:
    """A stand-in text encoder: the caption's characters as its one token's embedding (no MiniLM needed), so
    different captions give different embeddings."""

    dim = 8

    def encode(self, captions):
        emb = torch.tensor([[[float(sum(map(ord, c[k::self.dim]))) for k in range(self.dim)]] for c in captions])
        return emb, torch.ones(len(captions), 1, dtype=torch.bool)  # (B, 1, D), (B, 1)


def history(out):
    return checkpoint.load_training_state(out)["loss_history"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WORLDS = {  # both worlds, every background kind (flat and textured), one and two objects, frame tasks on
    "shapes": {"world_options": {"background": "mixed"}, "p_two": 0.5},
    "digits": {"world": "digits", "world_options": {"background": "mixed", "coloured": True, "p_two": 0.5}},
}


@pytest.mark.parametrize("world", WORLDS)
def test_device_batches_equal_host_batches(world):
    """float64: every tensor and caption of the batch equal to the host's, for examples anywhere in the run;
    float32: at most 1 level of 255 off, on a few pixels."""
    base = {**WORLDS[world], "tasks": {"t2v": 1.0, "i2v": 1.0, "interpolate": 1.0}}
    host = make_config("shapes-tiny", base)
    source = make_source(host)
    indices = list(range(1000, 1048))  # a later step's examples
    a = make_batch(host, source, Words(), indices, "cpu")
    b = make_batch(make_config("shapes-tiny", {**base, "render": "device", "render_dtype": "float64"}), source,
                   Words(), indices, "cpu")
    assert a.x0.shape == b.x0.shape == (48, 3, 4, 16, 16) and a.x0.dtype == b.x0.dtype == torch.float32
    assert torch.equal(a.x0, b.x0) and torch.equal(a.noise, b.noise) and torch.equal(a.sigma, b.sigma)
    assert a.captions == b.captions and a.tasks == b.tasks and len(set(a.captions)) > 10
    assert torch.equal(a.cond.text, b.cond.text) and torch.equal(a.cond.frame_mask, b.cond.frame_mask)
    assert torch.equal(b.cond.frames, b.x0)  # known frames are the drawn clips
    c = make_batch(make_config("shapes-tiny", {**base, "render": "device"}), source, Words(), indices, "cpu")
    assert (a.x0 - c.x0).abs().max().item() <= 1 / 127.5 + 1e-6 and (a.x0 != c.x0).float().mean() < 1e-3
    assert a.captions == c.captions and torch.equal(a.noise, c.noise)


def test_workers_hand_over_labels_not_pixels():
    """render="device": a micro-batch item is the clips' Scenes (drawn ahead in DataLoader workers, no pixels),
    and the batch made from it is the host's (also with a clip pool: examples 6, 7 show clips 1, 2 of 5)."""
    pool = {"grad_accum": 2, "clip_pool": 5}
    cfg = make_config("shapes-tiny", {"render": "device", "render_dtype": "float64", **pool})
    source = make_source(cfg)
    items = MicroBatchClips(cfg, source, micro=2, world_size=1, rank=0)
    scenes, flows = items[3]  # step 1, second accumulation round
    assert isinstance(scenes, Scenes) and flows is None and len(scenes.scene) == len(scenes.captions) == 2
    assert items.indices(3) == [6, 7]
    given = make_batch(cfg, source, Words(), [6, 7], "cpu", scenes)
    drawn = make_batch(make_config("shapes-tiny", pool), source, Words(), [6, 7], "cpu")
    assert torch.equal(given.x0, drawn.x0) and given.captions == drawn.captions
    assert torch.equal(given.x0, make_batch(cfg, source, Words(), [1, 2], "cpu").x0)


def test_training_on_device_drawn_clips(tmp_path):
    """The loop trains on device-drawn clips: with float64 the losses are the host run's exactly; the option is
    saved in config.json; a resumed run (with the next scenes drawn by a DataLoader worker) equals the
    uninterrupted one bit for bit."""
    device64 = {"render": "device", "render_dtype": "float64"}
    train(make_config("shapes-tiny", {"out": str(tmp_path / "host"), "steps": 3}))
    train(make_config("shapes-tiny", {**device64, "out": str(tmp_path / "full"), "steps": 3}))
    assert history(tmp_path / "full") == history(tmp_path / "host")
    saved = checkpoint.load_config(tmp_path / "full")["train"]
    assert saved["render"] == "device" and saved["render_dtype"] == "float64"
    train(make_config("shapes-tiny", {**device64, "out": str(tmp_path / "part"), "steps": 2}))
    train(make_config("shapes-tiny", {**device64, "out": str(tmp_path / "part"), "steps": 3, "workers": 1}),
          resume=True)
    assert history(tmp_path / "part") == history(tmp_path / "full")
    a, b = checkpoint.load_weights(tmp_path / "full"), checkpoint.load_weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_float32_device_run_resumes_exactly(tmp_path):
    """The default precision (float32, the GPU's fast path) is deterministic too: resumed == uninterrupted."""
    train(make_config("shapes-tiny", {"render": "device", "out": str(tmp_path / "full"), "steps": 3}))
    train(make_config("shapes-tiny", {"render": "device", "out": str(tmp_path / "part"), "steps": 1}))
    train(make_config("shapes-tiny", {"render": "device", "out": str(tmp_path / "part"), "steps": 3}), resume=True)
    assert history(tmp_path / "part") == history(tmp_path / "full")


@pytest.mark.parametrize("overrides, says", [
    ({"render": "gpu"}, "render must be one of ('host', 'device')"),
    ({"render": "device", "render_dtype": "float16"}, "render_dtype one of ('float32', 'float64')"),
    ({"render": "device", "data": "videos/"}, "drop --set render=device, or --data"),
    ({"render": "device", "noise_warp": 0.5}, "optical flows that noise_warp need(s): drop --set render=device, "
                                              "or turn off noise_warp"),
    ({"render": "device", "flow_consistency": 0.1}, "turn off flow_consistency"),
    ({"render": "device", "model.motion_cond": True}, "turn off model.motion_cond"),
], ids=["unknown", "dtype", "folder", "noise-warp", "flow-consistency", "motion-hints"])
def test_impossible_combinations_are_refused_in_one_line(overrides, says):
    with pytest.raises(ValueError) as e:
        make_config("shapes-tiny", overrides)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_the_same_options_on_host_or_single_frames_are_fine():
    make_config("shapes-tiny", {"noise_warp": 0.5, "model.motion_cond": True})  # host clips
    make_config("shapes-tiny", {"render": "device", "noise_warp": 0.5, "frames": 1})  # no flows at F = 1


def test_a_network_that_needs_hints_is_refused_before_the_loop():
    """Where the config does not say the network reads motion hints, the batch source still refuses."""
    cfg = make_config("shapes-tiny", {"render": "device"})
    with pytest.raises(ValueError, match="optical flows that motion hints need"):
        MicroBatchClips(cfg, make_source(cfg), micro=2, world_size=1, rank=0, with_flows=True)
    with pytest.raises(ValueError, match="optical flows that motion hints need"):
        make_batch(cfg, make_source(cfg), Words(), [0, 1], "cpu", motion_cond=True)


def test_cli_refuses_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "stillmotion.cli", "train", "--preset", "shapes-tiny",
                             "--out", str(tmp_path / "run"), "--set", "render=device", "--set", "noise_warp=1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and not (tmp_path / "run").exists()
    assert result.stderr.startswith("stillmotion: error: invalid training config: render 'device'")
    assert result.stderr.count("\n") == 1
