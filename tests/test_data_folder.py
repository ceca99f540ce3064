"""Real-video datasets: layouts, captions, clip timing and crops, bad files, determinism, preprocessed shards."""

import logging

import numpy as np
import pytest
import torch

from _videos import encode, frame_indices, numbered, tag_of
from stillmotion.data import preprocess as prep
from stillmotion.data.folder import ShardDataset, VideoFolder, cache_json, crop_resize, open_video_dataset
from stillmotion.data.layouts import TEMPLATES, VideoEntry, caption_from_label, detect_layout, scan, verify_entries
from stillmotion.data.preprocess import preprocess


def reasons_by_name(dataset):
    return {p.name: r for p, r in dataset.rejected}


@pytest.fixture()
def caption_folder(tmp_path):
    """Five good videos (five containers, sizes and rates) captioned by a CSV and sidecars, plus bad files."""
    root = tmp_path / "clips"
    encode(root / "a.mp4", numbered(24, 48, 64, tag=0), fps=12)
    encode(root / "b.webm", numbered(20, 40, 56, tag=1), fps=10)
    encode(root / "sub" / "c.avi", numbered(30, 48, 48, tag=2), fps=15)
    encode(root / "d.gif", numbered(16, 32, 40, tag=3), fps=8)
    encode(root / "e.mkv", numbered(24, 64, 48, tag=4), fps=24)
    (root / "captions.csv").write_text(
        "path,caption\n"
        'a.mp4,"A red ball rolls in. Then it bounces, twice."\n'
        "b.webm,a boat on a lake\n"
        "b.webm,a small boat drifting\n"
        "missing.mp4,not there\n")
    (root / "sub" / "c.txt").write_text("a person walks\n")
    (root / "d.gif.txt").write_text("unused: the sidecar is d.txt\n")
    (root / "d.txt").write_text("a spinning top\n\nA top, spinning fast.\n")
    (root / "e.txt").write_text("a dog runs\n")
    encode(root / "nocaption.mp4", numbered(24, tag=5))                      # no caption anywhere
    (root / "empty.mp4").write_bytes(b"")
    (root / "empty.txt").write_text("zero bytes\n")
    (root / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (root / "noise.txt").write_text("random bytes\n")
    data = encode(tmp_path / "whole.webm", numbered(24, tag=5), fps=12).read_bytes()
    (root / "cut.webm").write_bytes(data[: len(data) * 2 // 3])              # truncated
    (root / "cut.txt").write_text("a truncated file\n")
    (root / "notes.pdf").write_bytes(b"%PDF-1.4")
    return root


def test_caption_folder_pairs_captions_and_reports_bad_files(caption_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="stillmotion.data"):
        ds = open_video_dataset(caption_folder, frames=8, size=32, seed=1)
    assert detect_layout(caption_folder) == "captions"
    assert sorted(e.path.name for e in ds.entries) == ["a.mp4", "b.webm", "c.avi", "d.gif", "e.mkv"]
    captions = {e.path.name: e.captions for e in ds.entries}
    assert captions["a.mp4"] == ("A red ball rolls in. Then it bounces, twice.",)        # kept whole
    assert captions["b.webm"] == ("a boat on a lake", "a small boat drifting")            # rows pooled
    assert captions["d.gif"] == ("a spinning top", "A top, spinning fast.")               # one per line
    why = reasons_by_name(ds)
    assert set(why) == {"missing.mp4", "nocaption.mp4", "empty.mp4", "noise.mp4", "cut.webm", "notes.pdf"}
    assert "not found" in why["missing.mp4"] and "captions.csv" in why["missing.mp4"]
    assert "no caption" in why["nocaption.mp4"]
    assert "empty" in why["empty.mp4"]
    assert "not a readable video" in why["noise.mp4"]
    assert "truncated" in why["cut.webm"]
    assert "unsupported" in why["notes.pdf"]
    assert "skipped 6 of 11" in caplog.text and "cut.webm (truncated" in caplog.text and "1 more" in caplog.text

    seen_captions = {name: set() for name in captions}
    for seed in range(60):
        clip = ds.sample(seed)
        assert clip.video.shape == (8, 32, 32, 3) and clip.video.dtype == np.uint8
        entry = ds.entries[clip.index]
        assert tag_of(clip.video) == "abcde".index(entry.path.stem)                    # pixels match the file
        assert clip.caption in entry.captions
        seen_captions[entry.path.name].add(clip.caption)
    assert all(seen_captions.values())                                                   # every file is drawn
    assert len(seen_captions["b.webm"]) == len(seen_captions["d.gif"]) == 2             # and each of its captions
    video, caption = ds[2]
    assert video.shape == (3, 8, 32, 32) and video.dtype == torch.float32
    assert -1 <= video.min() and video.max() <= 1 and caption in ds.entries[2].captions
    loader = torch.utils.data.DataLoader(ds, batch_size=5)
    videos, texts = next(iter(loader))
    assert videos.shape == (5, 3, 8, 32, 32) and len(texts) == 5


def test_clip_timing_stride_fps_and_position(tmp_path):
    path = encode(tmp_path / "n.mp4", numbered(46), fps=24)
    entries, bad = verify_entries([VideoEntry(path, ("x",))])
    assert not bad and entries[0].info.num_frames == 46

    def indices(**kw):
        ds = VideoFolder(entries, **{"frames": 8, "size": 16, **kw})
        return frame_indices(ds.load(0, seed=0).video)

    # 46 frames, a clip spans 15 with stride 2: 32 spare frames, the centre start is frame 16
    assert indices(stride=2, clip="center") == list(range(16, 31, 2))
    assert indices(fps=12, clip="center")[1:] == [i + 2 for i in indices(fps=12, clip="center")[:-1]]
    assert np.diff(indices(fps=6, clip="center")).tolist() == [4] * 7                  # 24 -> 6 fps
    assert np.diff(indices(fps=12, stride=2)).tolist() == [4] * 7
    starts = set()
    for seed in range(20):
        ds = VideoFolder(entries, frames=8, size=16, stride=3, clip="random")
        got = frame_indices(ds.load(0, seed).video)
        assert np.diff(got).tolist() == [3] * 7 and 0 <= got[0] and got[-1] <= 45
        assert got == frame_indices(ds.load(0, seed).video)                             # same seed, same clip
        starts.add(got[0])
    assert len(starts) > 5
    too_long = VideoFolder(entries, frames=40, size=16, stride=2)
    assert len(too_long) == 0 and "too short" in too_long.rejected[0][1]
    padded = VideoFolder(entries, frames=40, size=16, stride=2, pad_short=True)
    got = frame_indices(padded.load(0, 0).video)
    assert got[:23] == list(range(0, 46, 2)) and set(got[23:]) == {44}                 # last frame held


def test_crop_resize_shorter_side_and_crops():
    ramp = np.broadcast_to(np.arange(64, dtype=np.uint8)[None, None, :, None] * 4, (2, 48, 64, 3)).copy()
    out = crop_resize(ramp, (24, 24))                    # 48x64 -> centre 48x48 box (x 8..55) -> 24x24
    assert out.shape == (2, 24, 24, 3)
    assert abs(int(out[0, 0, 0, 0]) - 4 * 8.5) <= 2 and abs(int(out[0, 0, -1, 0]) - 4 * 54.5) <= 2
    wide = crop_resize(ramp, (12, 32))                   # aspect 8:3: the full width, 24 rows
    assert wide.shape == (2, 12, 32, 3) and wide[0, 0, 0, 0] < 8 and wide[0, 0, -1, 0] > 240
    same = crop_resize(ramp, (48, 64))
    assert np.array_equal(same, ramp)                    # already the size: untouched
    lefts = {int(crop_resize(ramp, (16, 16), "random", np.random.default_rng(s))[0, 0, 0, 0]) for s in range(10)}
    assert len(lefts) > 3


def test_sample_is_a_pure_function_of_the_seed(caption_folder):
    ds = open_video_dataset(caption_folder, frames=6, size=24, crop="random", seed=3)
    again = open_video_dataset(caption_folder, frames=6, size=24, crop="random", seed=3)
    for seed in (0, 7, 123456789):
        a, b = ds.sample(seed), again.sample(seed)
        assert a.path == b.path and a.start == b.start and a.caption == b.caption
        assert np.array_equal(a.video, b.video)
    assert len({(c.path, c.start) for c in map(ds.sample, range(10))}) > 3
    x0, c0 = ds[1]
    ds.set_epoch(1)
    x1, _ = ds[1]
    ds.set_epoch(0)
    assert torch.equal(ds[1][0], x0) and ds[1][1] == c0 and not torch.equal(x0, x1)


def test_decode_failure_is_replaced_deterministically_and_recorded(caption_folder, caplog):
    ds = open_video_dataset(caption_folder, frames=8, size=16)
    victim = next(i for i, e in enumerate(ds.entries) if e.path.name == "a.mp4")
    ds.entries[victim].path.write_bytes(np.random.default_rng(1).bytes(3000))  # broken after the scan
    seed = next(s for s in range(100) if np.random.default_rng(s).integers(len(ds)) == victim)
    with caplog.at_level(logging.WARNING, logger="stillmotion.data"):
        clip = ds.sample(seed)
    assert clip.path.name != "a.mp4" and clip.video.shape == (8, 16, 16, 3)
    assert [p.name for p, _ in ds.failures] == ["a.mp4"] and "replacement" in caplog.text
    assert ds.sample(seed).path == clip.path and len(ds.failures) == 1      # known bad: skipped, same answer
    fresh = VideoFolder(ds.entries, frames=8, size=16)                        # another process / a resumed run
    assert np.array_equal(fresh.sample(seed).video, clip.video)
    for i in range(len(ds)):
        assert ds[i][0].shape == (3, 8, 16, 16)                               # never raises


def test_ucf101_layout_with_official_splits(tmp_path):
    root = tmp_path / "UCF101"
    for k, (cls, group) in enumerate([("ApplyEyeMakeup", 1), ("ApplyEyeMakeup", 8), ("YoYo", 1), ("YoYo", 8)]):
        encode(root / "UCF-101" / cls / f"v_{cls}_g{group:02d}_c01.avi", numbered(20, tag=k), fps=25)
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                           "YoYo/v_YoYo_g08_c01.avi 101\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n"
                                          "YoYo/v_YoYo_g02_c01.avi\n")
    assert detect_layout(root) == "ucf101"
    assert caption_from_label("ApplyEyeMakeup") == "apply eye makeup" and caption_from_label("YoYo") == "yo yo"
    every = open_video_dataset(root, frames=4, size=16)
    assert len(every) == 4
    train = open_video_dataset(root, frames=4, size=16, split="train")
    assert sorted(e.path.name for e in train.entries) == ["v_ApplyEyeMakeup_g08_c01.avi", "v_YoYo_g08_c01.avi"]
    test = open_video_dataset(root, frames=4, size=16, split="test")
    assert len(test) == 2 and "not found" in reasons_by_name(test)["v_YoYo_g02_c01.avi"]
    templates = {t.format(action="apply eye makeup") for t in TEMPLATES}
    drawn = {c.caption for c in map(train.sample, range(40)) if c.path.parent.name == "ApplyEyeMakeup"}
    assert drawn <= templates and len(drawn) >= 3          # templates vary per sample
    with pytest.raises(ValueError, match="trainlist03.txt not found"):
        open_video_dataset(root, frames=4, size=16, split="train", fold=3)


def test_kinetics_class_folders_and_annotation_csv(tmp_path):
    folders = tmp_path / "k400"
    encode(folders / "train" / "air_drumming" / "abc_000010_000020.mp4", numbered(20, tag=0))
    encode(folders / "train" / "playing guitar" / "def_000000_000010.mp4", numbered(20, tag=1))
    encode(folders / "val" / "air_drumming" / "ghi_000005_000015.mp4", numbered(20, tag=2))
    assert detect_layout(folders) == "kinetics"
    train = open_video_dataset(folders, frames=4, size=16, split="train")
    assert {e.label for e in train.entries} == {"air_drumming", "playing guitar"}
    assert "a person playing guitar" in next(e for e in train.entries if e.label == "playing guitar").captions
    assert len(open_video_dataset(folders, frames=4, size=16)) == 3

    flat = tmp_path / "k700"
    encode(flat / "videos" / "abc_000010_000020.mp4", numbered(20, tag=0), fps=10)
    encode(flat / "videos" / "long.mp4", numbered(46, tag=3), fps=10)                 # untrimmed, 4.6 s
    (flat / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                    "air drumming,abc,10,20,train\n"
                                    "juggling balls,long,1,3,train\n"
                                    "juggling balls,gone,0,10,train\n"
                                    "air drumming,xyz,0,10,val\n")
    assert detect_layout(flat) == "kinetics"
    ds = open_video_dataset(flat, frames=5, size=16, split="train")
    assert sorted(e.path.name for e in ds.entries) == ["abc_000010_000020.mp4", "long.mp4"]
    assert "not found" in reasons_by_name(ds)["gone_000000_000010.mp4"]
    span = next(i for i, e in enumerate(ds.entries) if e.path.name == "long.mp4")
    assert (ds.entries[span].start, ds.entries[span].end) == (1.0, 3.0)
    for seed in range(8):
        got = frame_indices(ds.load(span, seed).video)
        assert 10 <= got[0] and got[-1] <= 29 and np.diff(got).tolist() == [1] * 4       # inside 1 s .. 3 s


def test_manifest_with_time_spans_and_bad_rows(tmp_path):
    encode(tmp_path / "v.mp4", numbered(40, tag=1), fps=10)
    (tmp_path / "m.jsonl").write_text(
        '{"path": "v.mp4", "captions": ["first half", "the start"], "start": 0, "end": 2}\n'
        '{"path": "v.mp4", "caption": "second half", "start": 2.0}\n'
        '{"path": "v.mp4", "caption": ""}\n'
        "not json\n")
    found = scan(tmp_path / "m.jsonl")
    assert [(e.captions, e.start, e.end) for e in found.entries] == [
        (("first half", "the start"), 0.0, 2.0), (("second half",), 2.0, None)]
    assert len(found.rejected) == 2 and any("invalid JSON" in r for _, r in found.rejected)
    ds = open_video_dataset(tmp_path / "m.jsonl", frames=6, size=16)
    for seed in range(5):
        first, second = frame_indices(ds.load(0, seed).video), frame_indices(ds.load(1, seed).video)
        assert first[-1] < 20 <= second[0]


def test_nothing_usable_is_an_error_that_says_why(tmp_path):
    encode(tmp_path / "a.mp4", numbered(12))
    with pytest.raises(ValueError, match="no usable clips.*no caption"):
        open_video_dataset(tmp_path, frames=4, size=16)


def test_preprocess_resumes_after_interruption_without_duplicates(caption_folder, tmp_path, monkeypatch):
    out = tmp_path / "cache"
    before = sorted(p.name for p in caption_folder.rglob("*"))
    kw = dict(frames=4, size=16, clips_per_video=2, clips_per_shard=3)
    real_save, calls = prep._save_array, []

    def dying_save(path, array):
        calls.append(path.name)
        if len(calls) == 3:  # killed while writing the third shard: a half-written temp file stays behind
            (path.parent / f".{path.name}.999.dead.part").write_bytes(b"half")
            raise KeyboardInterrupt
        real_save(path, array)

    monkeypatch.setattr(prep, "_save_array", dying_save)
    with pytest.raises(KeyboardInterrupt):
        preprocess(caption_folder, out, **kw)
    with pytest.raises(ValueError, match="unfinished"):
        ShardDataset(out)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*")}
    assert sorted(first) == ["shard-00000.json", "shard-00000.npy", "shard-00001.json", "shard-00001.npy"]

    monkeypatch.setattr(prep, "_save_array", real_save)
    with pytest.raises(ValueError, match="prepared with"):
        preprocess(caption_folder, out, **{**kw, "frames": 5})
    preprocess(caption_folder, out, **kw)
    assert {n: (out / n).stat().st_mtime_ns for n in first} == first          # finished shards not redone
    assert not [p for p in out.iterdir() if p.name.startswith(".")]           # temp files gone
    assert sorted(p.name for p in out.glob("*.npy")) == [f"shard-0000{k}.npy" for k in range(4)]

    ds = open_video_dataset(out, frames=4, size=16, seed=2)
    assert isinstance(ds, ShardDataset) and len(ds) == 10                     # 5 videos x 2 clips, once each
    ids = [m["clip"] for k in range(4) for m in cache_json(out / f"shard-0000{k}.json")["clips"]]
    assert ids == list(range(10))
    planned = [prep._entry_from_json(d) for d in cache_json(out / "plan.json")["entries"]]
    source = VideoFolder(planned, frames=4, size=16, clip="center")
    for j in (0, 3, 9):
        clip = source.load(j // 2, prep.mix_seed(0, j), position=(j % 2 + 0.5) / 2)
        assert np.array_equal(ds.video(j), clip.video)                        # the cache holds exactly that clip
        assert ds.sample(j).caption in ds.captions[ds.sample(j).index]
    video, caption = ds[5]
    assert video.shape == (3, 4, 16, 16) and isinstance(caption, str)
    with pytest.raises(ValueError, match="holds clips of 4 frames"):
        open_video_dataset(out, frames=8, size=16)
    assert sorted(p.name for p in caption_folder.rglob("*")) == before      # nothing written beside the videos


def test_a_video_folder_is_a_training_source(caption_folder):
    from stillmotion.train.batches import make_batch
    from stillmotion.train.config import TrainConfig

    class Words:  # stands in for the text encoder: one token per caption
        def encode(self, captions):
            return torch.zeros(len(captions), 1, 8), torch.ones(len(captions), 1, dtype=torch.bool)

    cfg = TrainConfig(frames=4, size=16, cfg_dropout=0.0, data=str(caption_folder))
    source = open_video_dataset(cfg.data, frames=cfg.frames, size=cfg.size, seed=cfg.seed)
    a = make_batch(cfg, source, Words(), [0, 1, 2], "cpu")
    b = make_batch(cfg, source, Words(), [1, 2], "cpu")                       # e.g. another rank's share
    assert a.x0.shape == (3, 3, 4, 16, 16) and a.x0.min() >= -1 and a.x0.max() <= 1
    assert torch.equal(a.x0[1:], b.x0) and a.captions[1:] == b.captions       # example i is a function of i


def test_a_video_folder_run_previews_its_captions_and_leaves_the_config_alone(caption_folder, tmp_path):
    from stillmotion import checkpoint
    from stillmotion.train.config import TrainConfig, make_config
    from stillmotion.train.loop import train

    cfg = make_config("shapes-tiny", {"data": str(caption_folder), "steps": 1, "out": str(tmp_path / "run"),
                                      "sample_prompts": TrainConfig().sample_prompts})
    before = cfg.to_dict()
    train(cfg)
    assert cfg.to_dict() == before  # the caller's config is not changed
    captions = {c for e in open_video_dataset(caption_folder, frames=4, size=16).entries for c in e.captions}
    previewed = checkpoint.load_config(tmp_path / "run")["train"]["sample_prompts"]
    assert previewed and set(previewed) <= captions  # the folder's own captions, not the shapes prompts
