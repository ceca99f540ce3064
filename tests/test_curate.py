"""Curation: scores that flag static, cut, shaky, blurry, dark and duplicate clips; manifests; user files untouched."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from _videos import encode, scene
from stillmotion.data import curate as cur
from stillmotion.data import layouts
from stillmotion.data.curate import HASH_BITS, Thresholds, curate, near_duplicates, scene_cuts
from stillmotion.data.folder import open_video_dataset

pytest.importorskip("cv2")


def blur(frames, radius):
    return np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(radius))) for f in frames])


@pytest.fixture()
def collection(tmp_path):
    root = tmp_path / "raw"
    pan = scene(dx=1, seed=0)
    clips = {
        "pan.mp4": pan,
        "pan_copy.avi": pan,                                   # the same clip re-encoded: a near-duplicate
        "other.webm": scene(dx=1.5, seed=10),
        "still.mp4": scene(seed=2),
        "cut.mp4": scene(dx=1, seed=4, cut_at=12),
        "shaky.mp4": scene(jitter=4, seed=6),
        "soft.mp4": blur(scene(dx=1, seed=8), 4),
        "dark.mp4": (scene(dx=1, seed=12) * 0.04).astype(np.uint8),
    }
    for name, frames in clips.items():
        encode(root / name, frames, fps=12)
        (root / name).with_suffix(".txt").write_text(f"a clip called {name.split('.')[0]}\n")
    (root / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(2000))
    (root / "broken.txt").write_text("broken\n")
    encode(root / "uncaptioned.mp4", scene(dx=1, seed=14))
    return root


def snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def test_curate_flags_bad_clips_and_writes_manifests(collection, tmp_path, monkeypatch):
    before = snapshot(collection)
    out = tmp_path / "curated"
    result = curate(collection, out, thresholds=Thresholds(min_side=32), workers=2)
    assert snapshot(collection) == before                                    # user files untouched, none added
    why = {row["path"].rsplit("/", 1)[-1]: " | ".join(row["reasons"]) for row in result.rejected}
    kept = sorted(row["path"].rsplit("/", 1)[-1] for row in result.kept)
    assert len(kept) == 2 and "other.webm" in kept and len({"pan.mp4", "pan_copy.avi"} & set(kept)) == 1
    twin = ({"pan.mp4", "pan_copy.avi"} - set(kept)).pop()
    assert "near-duplicate of" in why[twin]
    assert why["still.mp4"].startswith("static")
    assert why["cut.mp4"].startswith("scene cut at 1.00 s")
    assert why["shaky.mp4"].startswith("shaky")
    assert why["soft.mp4"].startswith("blurry")
    assert "too dark" in why["dark.mp4"]                                      # (low contrast: static, blurry too)
    assert why["broken.mp4"].startswith("unreadable")
    assert why["uncaptioned.mp4"].startswith("no caption")
    assert set(why) | set(kept) == {p.name for p in collection.iterdir() if p.suffix != ".txt"}

    rows = [json.loads(line) for line in result.manifest.read_text().splitlines()]
    assert len(rows) == 10 and {r["kept"] for r in rows} == {True, False}
    pan = next(r for r in rows if r["path"].endswith("pan.mp4"))
    assert (pan["width"], pan["height"], pan["num_frames"], pan["codec"]) == (64, 48, 24, "h264") and pan["decodable"]
    assert pan["duration"] == pytest.approx(2.0, abs=0.1) and pan["fps"] == pytest.approx(12)
    assert pan["motion"] == pytest.approx(12 / 64, rel=0.2)                 # 1 px per frame, in widths per second
    assert len(result.rejected_manifest.read_text().splitlines()) == 8
    assert not [p for p in out.iterdir() if p.name.startswith(".")]         # no temp files left
    assert "2 kept" in result.summary() and "static" in result.summary()

    def no_probe(path):
        raise AssertionError("kept.jsonl carries the metadata; nothing should be probed")

    monkeypatch.setattr(layouts, "probe_video", no_probe)
    ds = open_video_dataset(result.kept_manifest, frames=8, size=32)
    assert sorted(e.path.name for e in ds.entries) == kept
    clip = ds.sample(0)
    assert clip.video.shape == (8, 32, 32, 3) and clip.caption.startswith("a clip called")

    def no_measure(path):
        raise AssertionError("every file is in the measurement cache")

    monkeypatch.setattr(cur, "measure_video", no_measure)
    lenient = curate(collection, out, thresholds=Thresholds(min_side=32, min_motion=0.0, max_cuts=1))
    assert {"still.mp4", "cut.mp4"} <= {row["path"].rsplit("/", 1)[-1] for row in lenient.kept}


def test_curate_refuses_to_write_into_the_source(collection):
    with pytest.raises(ValueError, match="separate folder"):
        curate(collection, collection)


def test_scene_cuts_are_spikes_not_steady_change():
    steady = np.full(30, 0.3)                       # a busy pan: every frame differs from the last a lot
    steady[0] = 0.0
    assert scene_cuts(steady, fps=10) == []
    steady[12] = 0.9
    assert scene_cuts(steady, fps=10) == [[1.2, pytest.approx(0.6)]]


def test_near_duplicates_match_brute_force():
    rng = np.random.default_rng(0)
    base = [int(rng.integers(0, 2**63)) << 129 | int(rng.integers(0, 2**63)) << 64 | int(rng.integers(0, 2**63))
            for _ in range(40)]
    hashes = {}
    for i, h in enumerate(base):
        hashes[f"v{i}"] = h
        if i % 4 == 0:  # a copy with a few flipped bits
            flips = rng.choice(HASH_BITS, size=int(rng.integers(0, 16)), replace=False)
            hashes[f"v{i}-copy"] = h ^ sum(1 << int(b) for b in flips)
    hexes = {k: f"{v:048x}" for k, v in hashes.items()}
    got = {frozenset(p for p, _ in g) for g in near_duplicates(hexes, 12)}
    names = list(hashes)
    pairs = {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:]
             if (hashes[a] ^ hashes[b]).bit_count() <= 12}
    assert got == pairs and len(pairs) >= 5          # random 192-bit hashes never collide; copies within 12 do
