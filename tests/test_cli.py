"""The command line through a subprocess, as a user runs it: train, generate, info, evaluate, and bad options."""

import json
import os
import subprocess
import sys

import pytest

from stillmotion.data.video_io import read_video


def run(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "stillmotion.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    r = run("train", "--preset", "shapes-tiny", "--steps", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def test_train_generate_info(tiny_run, tmp_path):
    assert (tiny_run / "checkpoint" / "model.safetensors").is_file()
    clip = tmp_path / "clip.gif"
    r = run("generate", "a red circle moving left", "--model", str(tiny_run), "--steps", "2", "--frames", "6",
            "--out", str(clip), "--scale", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    video = read_video(clip, fps=8)
    assert video.shape[1:] == (32, 32, 3) and 1 <= video.shape[0] <= 6
    mp4 = tmp_path / "clip.mp4"
    r = run("generate", "a blue square moving up", "--model", str(tiny_run), "--steps", "2", "--out", str(mp4),
            "--scale", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert read_video(mp4).shape == (4, 32, 32, 3)
    r = run("info", str(tiny_run))
    assert r.returncode == 0 and "resumable    yes" in r.stdout and "spacetime-unet" in r.stdout
    config = json.loads(run("info", str(tiny_run), "--json").stdout)
    assert config["record"]["step"] == 2 and config["train"]["model"]["channels"] == [8, 16]


def test_resume_from_the_cli(tiny_run):
    from stillmotion import checkpoint

    r = run("train", "--out", str(tiny_run), "--resume", "--steps", "3")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout
    assert checkpoint.load_config(tiny_run)["record"]["commands"] == [  # each command that trained it, for cards
        f"stillmotion train --preset shapes-tiny --steps 2 --out {tiny_run}",
        f"stillmotion train --out {tiny_run} --resume --steps 3"]
    r = run("train", "--out", str(tiny_run), "--resume", "--steps", "4", "--lr", "0.5")
    assert r.returncode == 2
    assert "only --steps, --minutes, --threads, --workers and --ckpt-minutes may change" in r.stderr


def test_resume_a_copied_run_writes_to_the_copy(tiny_run, tmp_path):
    import shutil

    from stillmotion import checkpoint

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    before = checkpoint.load_config(tiny_run)["record"]["step"]
    r = run("train", "--out", str(copy), "--resume", "--steps", str(before + 1))
    assert r.returncode == 0, r.stderr
    assert checkpoint.load_config(copy)["record"]["step"] == before + 1
    assert checkpoint.load_config(tiny_run)["record"]["step"] == before  # the original run is left alone


def test_evaluate_writes_a_report(tiny_run, tmp_path):
    r = run("evaluate", "--model", str(tiny_run), "--n", "4", "--steps", "2", "--split", "canonical",
            "--noise-warp", "0.5", "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    result = report["results"][0]
    assert result["protocol"]["n"] == 4 and 0 <= result["colour_and_direction_accuracy"] <= 1
    assert result["protocol"]["noise_warp"] == 0.5  # the sampling noise the report was made with
    assert "| canonical | 4 |" in (tmp_path / "eval" / "summary.md").read_text()
    assert result["stability"]["mean_dynamic_degree"] >= 0  # the flow metrics are part of every report
    kept = report["kept_noise"]  # the low-noise probe: a share of the noise per region, at each level
    assert kept["n"] == 32 and set(kept["object"]) == {"0.02", "0.05", "0.2"}
    assert all(-1 < v < 2 for v in [*kept["object"].values(), *kept["background"].values()])
    assert "low-noise probe" in (tmp_path / "eval" / "summary.md").read_text()


def test_evaluate_videos_scores_a_folder(tmp_path):
    import numpy as np

    from stillmotion.data.video_io import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    video = np.zeros((8, 32, 32, 3), np.uint8)
    for f in range(8):
        video[f, 12:20, 4 + 2 * f:12 + 2 * f] = 220  # a square moving right, 2 px per frame
    write_video(folder / "moving.gif", video)
    write_video(folder / "still.gif", np.repeat(video[:1], 8, axis=0))
    (folder / "broken.mp4").write_bytes(b"not a video")
    r = run("evaluate", "--videos", str(folder), "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr
    assert "skipped broken.mp4" in r.stdout
    report = json.loads((tmp_path / "eval" / "videos.json").read_text())
    assert report["videos"]["still.gif"]["dynamic_degree"] == 0
    assert report["videos"]["moving.gif"]["dynamic_degree"] > 1


@pytest.mark.parametrize("args, message", [
    (["train", "--preset", "shapes-xxl"], "invalid choice: 'shapes-xxl'"),
    (["train", "--preset", "shapes-tiny", "--frames", "0"], "frames must be >= 1"),
    (["train", "--preset", "shapes-tiny", "--set", "colour=red"], "unknown training option 'colour'"),
    (["generate", "a red circle", "--frames", "0", "--model", "x"], "--frames must be >= 1"),
    (["generate", "a red circle", "--out", "/dev/null/clip.mp4"], "cannot write '/dev/null/clip.mp4'"),
    (["generate", "a red circle", "--out", "clip.txt"], "use a .mp4, .gif, .webm or .png"),
    (["generate", "a red circle", "--out", "/proc/clip.gif"], "cannot write '/proc/clip.gif'"),  # before sampling
    (["generate", "a red circle", "--model", "/nonexistent/run"], "no checkpoint at '/nonexistent/run'"),
    (["generate", "a red circle", "--sampler", "magic"], "invalid choice: 'magic'"),
    (["train", "--resume", "--out", "/nonexistent/run"], "no checkpoint at '/nonexistent/run'"),
])
def test_bad_options_fail_clearly(args, message, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_export_is_loadable_and_close(tiny_run, tmp_path):

    from stillmotion.pipelines.text_to_video import load

    r = run("evaluate", "--model", str(tiny_run), "--n", "4", "--steps", "2", "--split", "canonical", "--out",
            str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr
    (tmp_path / "notes.md").write_text("Trained for two steps: a test model.")
    r = run("export", str(tiny_run), str(tmp_path / "release"), "--report", str(tmp_path / "eval" / "report.json"),
            "--notes", str(tmp_path / "notes.md"), "--strategy", "first-frame", "--guidance", "6")
    assert r.returncode == 0, r.stderr
    saved = load(tmp_path / "release").sampling  # sampling defaults saved with the model
    assert (saved.strategy, saved.guidance, saved.steps) == ("first-frame", 6.0, load(tiny_run).sampling.steps)
    assert not (tmp_path / "release" / "training_state.pt").exists()
    card = (tmp_path / "release" / "MODEL_CARD.md").read_text()
    assert "`stillmotion train --preset shapes-tiny --steps 2" in card  # the exact command, from the record
    assert "| canonical | 4 |" in card and "Trained for two steps" in card
    a, b = load(tiny_run), load(tmp_path / "release")
    same = a.sampling.merged(steps=2)
    a = a("a red circle moving left", sampling=same, seed=0, progress=False)
    b = b("a red circle moving left", sampling=same, seed=0, progress=False)
    assert (a - b).abs().max() < 2e-2  # float16 storage changes weights by ~1e-3 relative


def test_interrupted_training_keeps_its_progress(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stillmotion.cli", "train", "--preset", "shapes-tiny",
                             "--steps", "100000", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "log.csv").is_file():
        time.sleep(0.5)
    time.sleep(2)  # a few steps
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    step = config["record"]["step"]
    assert step >= 1
    r = run("train", "--out", str(out), "--resume", "--steps", str(step + 1))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "checkpoint" / "config.json").read_text())["record"]["step"] == step + 1


def test_curate_preprocess_and_train_on_a_video_folder(tmp_path):
    """A user's own videos, end to end: curate -> preprocess -> train --data -> generate."""
    from _videos import encode, scene

    videos = tmp_path / "videos"
    for i in range(3):
        encode(videos / f"pan{i}.mp4", scene(24, 48, 64, dx=1.5 + i, seed=i))
        (videos / f"pan{i}.txt").write_text(f"a camera panning over texture number {i}")
    encode(videos / "still.mp4", scene(24, 48, 64, dx=0.0, seed=7))
    (videos / "still.txt").write_text("nothing moves")
    (videos / "broken.mp4").write_bytes(b"\x00" * 100)
    (videos / "broken.txt").write_text("a broken file")
    r = run("curate", str(videos), "--out", str(tmp_path / "curated"), "--set", "min_side=32")
    assert r.returncode == 0, r.stderr
    kept = [json.loads(line) for line in (tmp_path / "curated" / "kept.jsonl").read_text().splitlines()]
    rejected = (tmp_path / "curated" / "rejected.jsonl").read_text()
    assert len(kept) == 3 and "still.mp4" in rejected and "broken.mp4" in rejected
    assert sorted(os.listdir(videos)) == sorted(["pan0.mp4", "pan1.mp4", "pan2.mp4", "still.mp4", "broken.mp4",
                                                 "pan0.txt", "pan1.txt", "pan2.txt", "still.txt", "broken.txt"])
    cache = tmp_path / "cache"
    r = run("preprocess", str(tmp_path / "curated" / "kept.jsonl"), str(cache), "--frames", "4", "--size", "16")
    assert r.returncode == 0, r.stderr
    for source in (str(tmp_path / "curated" / "kept.jsonl"), str(cache)):
        out = tmp_path / ("run-" + os.path.basename(source))
        workers = ["--workers", "2"] if source.endswith(".jsonl") else []  # decode in DataLoader processes
        r = run("train", "--preset", "shapes-tiny", "--data", source, "--steps", "2", "--out", str(out), *workers)
        assert r.returncode == 0, r.stderr
        assert ("text embeddings: 3 captions" in r.stdout) == (source == str(cache))  # preprocess embedded them
        assert (out / "checkpoint" / "model.safetensors").is_file()
    r = run("generate", "a camera panning", "--model", str(out), "--steps", "2", "--out", str(tmp_path / "p.gif"),
            "--quiet")
    assert r.returncode == 0, r.stderr


def test_resume_a_run_stopped_in_its_image_stage(tmp_path):
    """A staged run (image_minutes) stopped before its video stage saved anything resumes from its folder: the
    image stage goes on, then the video stage starts from it."""
    from stillmotion import checkpoint
    from stillmotion.train.config import make_config, save_json
    from stillmotion.train.loop import stages, train

    out = tmp_path / "staged"
    cfg = make_config("shapes-tiny", {"out": str(out), "steps": 2, "minutes": 0.5, "image_minutes": 0.01,
                                      "image_batch_size": 4})
    save_json(out / "train_config.json", cfg.to_dict())  # as train() writes it first
    train(stages(cfg)[0])  # the image stage ...
    config_path = checkpoint.resolve(out / "image") / "config.json"
    config = json.loads(config_path.read_text())
    config["record"]["finished"] = False  # ... as if stopped before its budget was spent
    config_path.write_text(json.dumps(config))
    r = run("train", "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout and "inflation" in r.stdout
    assert checkpoint.load_config(out)["record"]["step"] == 2
