"""FVD-<world>: Fréchet distance between sets of clips in a world's feature-network space, with floor and controls.

    FVD-shapes(A, B) = d^2(N(mu_A, S_A), N(mu_B, S_B)) of the 256-d embeddings of eval/features.py

(eval/frechet.py does the float64 math.) The name says which network made the features: these numbers are
never comparable with FVD from the literature (Kinetics-trained I3D, 224 px, thousands of clips; for that,
see eval/i3d.py), only with each other at the same world, clip count and protocol.

A distance means little without its scale, so every report carries:
  floor           FD between two disjoint sets of N real clips of the world: what sampling noise alone gives
                  (the estimate is biased upward by about D / N, so compare only at the same N);
  controls        FD against the same real set of corrupted real clips: frames shuffled in time (teleporting
                  objects), frame 0 repeated (nothing moves), frames reversed in time.
A useful feature network puts each control far above the floor. One exception is built into the worlds: they
are almost symmetric under time reversal. A reversed left-mover is a right-mover starting where right-movers
start (`shapes.place` keeps whole paths on the canvas), a reversed bounce is a bounce, static stays static, and
growing reverses to shrinking with the same sizes when fast (slow: final sizes 0.19-0.53 of the canvas against
shrinking's 0.2-0.6 starting sizes). The other difference: real rotating shapes always start upright. So
reversed real clips are, but for those details, real clips, and their FD stays near the floor for any feature
network that does not single the details out. That the network sees the arrow of time is checked per clip
instead: its motion head should read reversed clips as the reversed motion (`reversal.motion_accuracy`).

The text-to-video question is not only "do these clips look like real clips" but "does each clip show what its
caption asked for". So every distance also comes as a Fréchet Joint Distance (FJD, DeVries et al. 2019; see
eval/frechet.py): features joined with a one-hot embedding of the caption's motion (`CONDITION`). A reversed
left-mover captioned "moving left" looks like a real right-mover, but not like a real clip *captioned* "moving
left", so the reversed control separates from the floor under FJD.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from stillmotion.data.captions import DIRECTIONS
from stillmotion.data.worlds import get_world
from stillmotion.eval.features import FeatureNet, embed, world_heads
from stillmotion.eval.features_train import draw, preset_worlds
from stillmotion.eval.frechet import frechet_distance, frechet_joint_distance, gaussian_stats

REAL_SEED = 2 * 10**15   # reference real clips: set A = REAL_SEED + i, set B = REAL_SEED + SET_B + i
SET_B = 10**9
CONDITION = ("motion",)  # caption attributes the joint distance conditions on
NOISY_BELOW = 64  # clips per set under which a report carries a caveat: the estimate is mostly sampling noise


def metric_name(net: FeatureNet) -> str:
    return f"FVD-{net.config.world}"


# ----------------------------------------------------------------------------------------------- corruptions

def shuffle_time(videos: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Each clip's frames in its own random order: (B, C, F, H, W) -> (B, C, F, H, W)."""
    b, _, f = videos.shape[:3]
    order = torch.argsort(torch.rand(b, f, generator=generator), dim=1)                  # (B, F) permutations
    return torch.stack([v[:, o] for v, o in zip(videos, order)])


def repeat_first_frame(videos: Tensor) -> Tensor:
    """Frame 0 held for the whole clip: (B, C, F, H, W) -> (B, C, F, H, W)."""
    return videos[:, :, :1].expand_as(videos).contiguous()


def reverse_time(videos: Tensor) -> Tensor:
    """Frames in reverse order: (B, C, F, H, W) -> (B, C, F, H, W)."""
    return videos.flip(2)


def reversed_motion(motion: str) -> str:
    """The motion a clip shows when played backwards: left <-> right, growing <-> shrinking, others unchanged
    (static, bouncing; rotating keeps its class and flips its spin)."""
    if motion in DIRECTIONS:
        dx, dy = DIRECTIONS[motion]
        return next(name for name, v in DIRECTIONS.items() if v == (-dx, -dy))
    return {"growing": "shrinking", "shrinking": "growing"}.get(motion, motion)


# ----------------------------------------------------------------------------------------------- distances

def condition_vectors(labels: list, world: str, attributes=CONDITION) -> np.ndarray:
    """One-hot embedding of what each clip's caption asks for: (N, K) float64.

    Per attribute (a head of the world's feature network, e.g. motion), one column per class plus one for
    clips with more than one object (whose caption names several); the blocks are concatenated.
    """
    heads = world_heads(world)
    unknown = [a for a in attributes if a not in heads or a == "objects"]
    if unknown:
        raise ValueError(f"condition_vectors: {unknown} are not attributes of the {world!r} world; choose from "
                         f"{[h for h in heads if h != 'objects']}")
    blocks = []
    for name in attributes:
        classes = heads[name]
        block = np.zeros((len(labels), len(classes) + 1))
        for i, scene in enumerate(labels):
            single = len(scene.objects) == 1
            block[i, classes.index(str(getattr(scene.objects[0], name))) if single else len(classes)] = 1.0
        blocks.append(block)
    return np.hstack(blocks)


def _check_videos(videos, what: str) -> Tensor:
    if isinstance(videos, (list, tuple)):
        videos = torch.stack(list(videos))
    if not isinstance(videos, Tensor) or videos.ndim != 5 or videos.shape[1] != 3:
        shape = tuple(videos.shape) if hasattr(videos, "shape") else type(videos).__name__
        raise ValueError(f"{what}: expected videos (N, 3, F, H, W) float in [-1, 1]; got {shape}")
    if len(videos) < 2:
        raise ValueError(f"{what}: a Fréchet distance needs at least 2 clips per set (use hundreds); got "
                         f"{len(videos)}")
    return videos


def frechet_video_distance(videos_a, videos_b, net: FeatureNet, *, batch: int = 64) -> float:
    """FVD-<world> (see module docstring) between two clip sets (N1, 3, F, H, W) and (N2, 3, F, H, W) in [-1, 1].

    Use equal N for both sets and compare only with numbers at the same N (the estimate's bias is ~D / N).
    """
    a = embed(net, _check_videos(videos_a, "frechet_video_distance (first set)"), batch=batch)
    b = embed(net, _check_videos(videos_b, "frechet_video_distance (second set)"), batch=batch)
    return frechet_distance(*gaussian_stats(a), *gaussian_stats(b))


def _read_motion(net: FeatureNet, videos: Tensor, batch: int = 64) -> list[str]:
    """The motion head's reading of each clip (N, 3, F, H, W), in batches."""
    return [m for i in range(0, len(videos), batch) for m in net.predict(videos[i:i + batch])["motion"]]


def real_sets(worlds: list, n: int) -> tuple[Tensor, Tensor, list[str], list, list]:
    """Two disjoint sets of n real clips (A, B: (n, 3, F, H, W)), A's captions, and both sets' labels."""
    a, captions, labels_a = draw(worlds, [REAL_SEED + i for i in range(n)])
    b, _, labels_b = draw(worlds, [REAL_SEED + SET_B + i for i in range(n)])
    return a, b, captions, labels_a, labels_b


@torch.no_grad()
def controls(net: FeatureNet, n: int = 1024, *, worlds: list | None = None, seed: int = 0,
             real: tuple | None = None) -> dict:
    """Floor and controls of FVD-<world> at n clips per set.

    Args:
        net: the world's feature network.
        n: clips per set (>= 2; use hundreds; the floor shrinks roughly as 1 / n).
        worlds: world instances to draw real clips from (default: the variants the network was trained on).
        seed: seed of the time shuffle.
        real: precomputed `real_sets(worlds, n)` (to share real clips with a generated-vs-real comparison).

    Returns:
        A JSON-able dict: floor, each control, each control / floor, and the per-clip reversal check.
    """
    start = time.time()
    if worlds is None:
        worlds = preset_worlds(net.config.world)
    a, b, _, labels_a, labels_b = real if real is not None else real_sets(worlds, n)
    feats_a = embed(net, a)
    stats_a = gaussian_stats(feats_a)
    cond_a = condition_vectors(labels_a, net.config.world)
    cond_b = condition_vectors(labels_b, net.config.world)  # a corrupted clip keeps its caption
    corrupted = {"floor": b, "time_shuffled": shuffle_time(b, generator=torch.Generator().manual_seed(seed)),
                 "static_frame0": repeat_first_frame(b), "time_reversed": reverse_time(b)}
    feats = {k: embed(net, v) for k, v in corrupted.items()}
    plain = {k: frechet_distance(*gaussian_stats(f), *stats_a) for k, f in feats.items()}
    joint = {k: frechet_joint_distance(feats_a, cond_a, f, cond_b) for k, f in feats.items()}
    floor = plain.pop("floor")
    values = plain
    joint_floor = joint.pop("floor")
    # per clip: does the motion head read a reversed clip as the reversed motion?
    single = [i for i, lab in enumerate(labels_b) if len(lab.objects) == 1]
    truth = [labels_b[i].objects[0].motion for i in single]
    forward = _read_motion(net, b[single])
    backward = _read_motion(net, reverse_time(b[single]))
    mean = lambda hits: float(np.mean(hits)) if hits else None
    return {
        "metric": metric_name(net),
        "n": len(b),
        "world": net.config.world,
        "worlds": [repr(w) for w in worlds],
        "floor": floor,
        **values,
        "ratio_to_floor": {k: v / max(floor, 1e-12) for k, v in values.items()},
        "joint": {
            "metric": f"FJD-{net.config.world} (caption {'+'.join(CONDITION)})",  # no '|': it goes in tables
            "floor": joint_floor, **joint,
            "ratio_to_floor": {k: v / max(joint_floor, 1e-12) for k, v in joint.items()},
            "note": "Fréchet Joint Distance of [features, alpha * one-hot caption motion] (DeVries et al. 2019), "
                    "alpha = mean feature norm / mean condition norm of real set A; corrupted clips keep their "
                    "captions, so a reversed left-mover is judged against real clips captioned 'left'",
        },
        "reversal": {
            "motion_accuracy": mean([p == reversed_motion(m) for p, m in zip(backward, truth)]),
            "motion_accuracy_forward": mean([p == m for p, m in zip(forward, truth)]),
            "note": "motion head on reversed single-object clips, scored against the reversed motion "
                    "(left<->right, growing<->shrinking); the worlds are almost symmetric under time reversal "
                    "(see eval/fvd.py), so FD of reversed clips stays near the floor",
        },
        "seconds": round(time.time() - start, 1),
    }


# ----------------------------------------------------------------------------------------------- a model

def model_worlds(info: dict) -> list | None:
    """The world a text-to-video checkpoint was trained on, rebuilt from its config.json (as train.loop builds
    it); None when it was trained on a folder of videos."""
    data, train = info.get("data") or {}, info.get("train") or {}
    if data.get("data") or train.get("data"):
        return None
    name = data.get("world") or train.get("world") or "shapes"
    kwargs = dict(frames=int(data.get("frames", train.get("frames", 16))),
                  size=int(data.get("size", train.get("size", 32))))
    if name == "shapes":
        kwargs["p_two"] = float(train.get("p_two", 0.3))
    return [get_world(name, **{**kwargs, **(train.get("world_options") or {})})]


@torch.no_grad()
def evaluate_fvd(pipe, net: FeatureNet, *, n: int = 256, seed: int = 0, sampling=None, batch: int = 16, i3d=None,
                 progress: bool = True) -> tuple[dict, Tensor]:
    """FVD-<world> of a text-to-video model against real clips of the world it was trained on.

    Protocol: real set A = n clips of the model's world (seeds REAL_SEED + i); the model makes one clip for each
    of A's captions (sampling seed = seed + batch start); FVD(generated, A) is reported beside the floor
    FD(B, A) of a disjoint real set B and the controls of `controls` on B.

    Args:
        pipe: a TextToVideo pipeline (its `info` is the checkpoint config).
        net: the feature network of the same world.
        i3d: optional I3D TorchScript module (eval/i3d.py): adds standard-feature FVD of the same sets.

    Returns:
        (report dict, generated clips (n, 3, F, H, W)); the report says why when it is skipped.
    """
    from tqdm import tqdm

    worlds = model_worlds(pipe.info)
    if worlds is None:
        return {"metric": metric_name(net), "skipped": "the model was trained on a video folder, not a world"}, None
    if worlds[0].name != net.config.world:
        return {"metric": metric_name(net), "skipped": f"the model was trained on the {worlds[0].name!r} world; "
                                                        f"the feature network is for {net.config.world!r}"}, None
    real = real_sets(worlds, n)
    a, b, captions = real[:3]
    start = time.time()
    generated = []
    for i in tqdm(range(0, n, batch), desc=f"{metric_name(net)}: generating", disable=not progress):
        videos = pipe(captions[i:i + batch], sampling=sampling, seed=seed + i, progress=False)
        generated.append(videos.float().cpu().clamp(-1, 1))
    generated = torch.cat(generated)                                                        # (n, 3, F, H, W)
    seconds = time.time() - start
    report = controls(net, worlds=worlds, seed=seed, real=real)
    feats_g, feats_a = embed(net, generated), embed(net, a)
    report["generated"] = frechet_distance(*gaussian_stats(feats_g), *gaussian_stats(feats_a))
    report["generated_ratio_to_floor"] = report["generated"] / max(report["floor"], 1e-12)
    cond_a = condition_vectors(real[3], net.config.world)  # clip i was generated from A's caption i
    report["joint"]["generated"] = frechet_joint_distance(feats_a, cond_a, feats_g, cond_a)
    report["joint"]["generated_ratio_to_floor"] = report["joint"]["generated"] / max(report["joint"]["floor"], 1e-12)
    report["protocol"] = {"n": n, "real_seeds": f"A: {REAL_SEED} + i, B: {REAL_SEED + SET_B} + i, i < {n}",
                          "prompts": "the captions of real set A", **(sampling or pipe.sampling).to_dict(),
                          "seed": seed, "world": repr(worlds[0]),
                          "feature_net": net.info.get("record", {}).get("commands", []) if hasattr(net, "info")
                          else []}
    report["seconds_generating"] = round(seconds, 1)
    if n < NOISY_BELOW:  # the bias ~D / n and the spread dwarf differences between models
        report["caveat"] = f"FVD from {n} clips is noisy; use --fvd-n >= 256 for comparisons"
    if i3d is not None:
        from stillmotion.eval.i3d import i3d_features

        fa, fb, fg = (i3d_features(i3d, v) for v in (a, b, generated))
        fd = lambda x: frechet_distance(*gaussian_stats(x), *gaussian_stats(fa))
        report["i3d"] = {"metric": "FVD (I3D features; at this N and 32 px not comparable with the literature)",
                         "generated": fd(fg), "floor": fd(fb), "dim": int(fa.shape[1])}
    return report, generated
