"""Skip and record: a folder with a symlink loop, a dangling link, a FIFO, a folder link back to itself and a
binary caption goes through curate, preprocess, train --data and evaluate --videos; each finishes, keeps the good
clips, and writes every bad entry with its reason to skipped.tsv."""

import json
import os
import signal
import subprocess
import sys

import pytest

from _videos import encode, scene
from stillmotion.data.curate import Thresholds, curate
from stillmotion.data.folder import ShardDataset, open_video_dataset
from stillmotion.data.layouts import scan
from stillmotion.data.preprocess import preprocess
from stillmotion.data.skips import SKIP_LIST, entry_problem, read_skip_list, read_text_lines

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(signal, "SIGALRM"),
                                reason="needs FIFOs, symlinks and SIGALRM (POSIX)")

GOOD = ["pan0.mp4", "pan1.mp4", "pan2.mp4"]
BAD = {"a.mp4": "symlink loop", "b.mp4": "symlink loop", "dangling.mp4": "dangling symlink",
       "pipe.mp4": "FIFO", "garbled.mp4": "garbled.txt is unusable: binary", "again": "scanned already"}


@pytest.fixture(autouse=True)
def no_hang():
    """A scan that opened the FIFO would wait forever for a writer: fail instead."""
    def hung(signum, frame):
        raise TimeoutError("hung for 120 s: something opened the FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture()
def faulty(tmp_path):
    root = tmp_path / "videos"
    for i, name in enumerate(GOOD):
        encode(root / name, scene(24, 48, 64, dx=1.5 + i, seed=i))
        (root / name).with_suffix(".txt").write_text(f"a camera panning over texture number {i}\n")
    encode(root / "garbled.mp4", scene(24, 48, 64, dx=2.0, seed=9))
    (root / "garbled.txt").write_bytes(bytes(range(256)) * 3)                # binary: 8 garbage lines before
    os.symlink("b.mp4", root / "a.mp4")
    os.symlink("a.mp4", root / "b.mp4")
    os.symlink("nowhere.mp4", root / "dangling.mp4")
    os.mkfifo(root / "pipe.mp4")
    os.symlink(".", root / "again")                                          # a folder link back to itself
    for name in ("a", "b", "dangling", "pipe"):                              # captioned: only the entry is bad
        (root / f"{name}.txt").write_text(f"a caption for {name}\n")
    return root


def assert_recorded(rows, bad=BAD):
    """Every bad entry is in `rows` [(path, reason)] with its reason, and no good clip is."""
    why = {os.path.basename(str(p)): r for p, r in rows}
    for name, reason in bad.items():
        assert name in why and reason in why[name], (name, why.get(name))
    assert not set(GOOD) & set(why)


def test_entry_problems_and_binary_captions(faulty, tmp_path):
    assert entry_problem(faulty / "pan0.mp4") is None
    assert "symlink loop" in entry_problem(faulty / "a.mp4")
    assert "dangling symlink" in entry_problem(faulty / "dangling.mp4") and "nowhere.mp4" in entry_problem(
        faulty / "dangling.mp4")
    assert "FIFO" in entry_problem(faulty / "pipe.mp4")
    texts = {"utf8.txt": "\ufeffcafé au lait\n\nsecond line\n".encode(), "nul.txt": b"a caption\x00\x01\x02",
             "utf16.txt": "a caption".encode("utf-16"), "latin1.txt": "café".encode("latin-1"),
             "control.txt": b"ok " + bytes(range(1, 9)) * 4}
    for name, data in texts.items():
        (tmp_path / name).write_bytes(data)
    assert read_text_lines(tmp_path / "utf8.txt") == (["café au lait", "", "second line"], None)
    for name in ("nul.txt", "utf16.txt", "latin1.txt", "control.txt"):
        lines, problem = read_text_lines(tmp_path / name)
        assert lines == [] and ("binary" in problem or "not UTF-8" in problem), (name, problem)
    assert "FIFO" in read_text_lines(faulty / "pipe.mp4")[1]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_file_is_recorded(faulty):
    (faulty / "pan0.mp4").chmod(0)
    found = scan(faulty)
    assert "unreadable" in dict((p.name, r) for p, r in found.rejected)["pan0.mp4"]


def test_scan_skips_and_records_each_bad_entry(faulty):
    found = scan(faulty)
    assert sorted(e.path.name for e in found.entries) == GOOD                 # the binary caption made no entry
    assert_recorded(found.rejected)


def test_curate_keeps_the_good_clips_and_writes_the_skip_list(faulty, tmp_path):
    out = tmp_path / "curated"
    result = curate(faulty, out, thresholds=Thresholds(min_side=32))
    assert sorted(os.path.basename(r["path"]) for r in result.kept) == GOOD
    assert_recorded(read_skip_list(out))
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert_recorded([(r["path"], " ".join(r["reasons"])) for r in rejected])


def test_curate_that_fails_early_leaves_no_output_folder(tmp_path, monkeypatch):
    from stillmotion.data import curate as cur

    def broken(path):
        raise RuntimeError("measuring failed")

    encode(tmp_path / "videos" / "pan0.mp4", scene(24, 48, 64, dx=1.5))
    (tmp_path / "videos" / "pan0.txt").write_text("a pan\n")
    monkeypatch.setattr(cur, "measure_video", broken)
    out = tmp_path / "curated"
    with pytest.raises(RuntimeError, match="measuring failed"):
        curate(tmp_path / "videos", out)
    assert not out.exists()


def test_preprocess_keeps_the_good_clips_and_writes_the_skip_list(faulty, tmp_path):
    out = tmp_path / "cache"
    preprocess(faulty, out, frames=4, size=16, text_encoder=None)
    shards = ShardDataset(out)
    assert len(shards) == len(GOOD) and sorted(os.path.basename(p) for p, _ in shards.sources) == GOOD
    assert_recorded(read_skip_list(out))
    preprocess(faulty, out, frames=4, size=16, text_encoder=None)            # a resume keeps the list whole
    assert_recorded(read_skip_list(out))
    run = tmp_path / "run-on-cache"
    run.mkdir()
    open_video_dataset(out, frames=4, size=16, skip_list=run)                # training on the cache: its list
    assert_recorded(read_skip_list(run))


def test_train_data_finishes_and_the_data_layer_writes_the_run_skip_list(faulty, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "stillmotion.cli", "train", "--preset", "shapes-tiny", "--data",
                        str(faulty), "--steps", "1", "--out", str(run)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "skipped 6 of 9" in r.stderr and "symlink loop" in r.stderr and "FIFO" in r.stderr
    assert (run / "checkpoint" / "model.safetensors").is_file()
    assert f"full list in {run / SKIP_LIST}" in " ".join(r.stderr.split())  # the run folder keeps the whole list
    assert_recorded(read_skip_list(run / SKIP_LIST))
    dataset = open_video_dataset(faulty, frames=4, size=16)
    assert sorted(e.path.name for e in dataset.entries) == GOOD


def test_evaluate_videos_lists_every_skipped_entry(faulty, tmp_path):
    out = tmp_path / "eval"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "stillmotion.cli", "evaluate", "--videos", str(faulty), "--out",
                        str(out), "--max-frames", "8"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "videos.json").read_text())
    assert sorted(report["videos"]) == sorted(GOOD + ["garbled.mp4"])         # captions play no part here
    assert all(v["frames"] == 8 for v in report["videos"].values()) and report["settings"]["num_frames"] == 8
    bad = {k: v for k, v in BAD.items() if k not in ("garbled.mp4", "again")}
    assert_recorded(report["skipped"].items(), bad)
    assert_recorded(read_skip_list(out), bad)
    assert f"skipped 4 of 8 video(s); full list in {out / SKIP_LIST}" in r.stderr
    assert "video/s" in r.stderr or "it/s" in r.stderr                         # a progress bar
