"""Drift of a long clip: does the object stay itself window after window, and do the windows join smoothly?

A long clip made window by window (pipelines/extend.py) can drift: the object's colour, size or speed slowly
changes from one window to the next, and a window can start with a visible jump (a seam). For a single-object
clip on a dark background (the pixel probe of eval/probe.py: the object is the bright pixels), the clip is cut
into segments, the frames each window made (a cut at every seam; without seams, every `window` frames), and each
segment is read:
  colour      nearest palette colour of the median foreground pixel (as `probe.read_clip`), and the RGB distance
              (0..441) of that median from the first segment's
  size        mean foreground area in pixels; size_change = area / first segment's area - 1
  velocity    least-squares slope of the centroid over the segment's frames, (vx, vy) px/frame; speed its
              length, speed_change = speed - first segment's speed (px/frame)
  direction   `probe.read_clip`'s reading of the segment (a compass direction or "static")
and compared with the first segment (the given video, or the first window). A single object gliding at the
world's speeds crosses the 32-pixel canvas in one to two 16-frame windows, so most long clips run out of canvas;
`room` says whether a segment could keep the first segment's velocity to its end without the object's box leaving
the canvas (judged at its first frame), so that "kept its direction" can be asked where it was possible at all.
Seams: the warping error
(eval/temporal.py, 0..255 levels) of each frame pair that crosses a seam (the last given frame and the first new
one) against that of the pairs inside segments; seam_ratio = seam / inside (1: the seams are as smooth as the
rest; the issue asks for <= 1.5).
"""

from __future__ import annotations

import math

import numpy as np

from stillmotion.data.video_io import as_frames
from stillmotion.eval.probe import foreground, read_clip
from stillmotion.eval.temporal import warping_error
from stillmotion.flow import video_flows

SEAM_RATIO_LIMIT = 1.5  # the bar: seam warping error at most 1.5x the inside-window one


def segment_bounds(frames: int, seams: list[int] | None = None, window: int = 16) -> list[tuple[int, int]]:
    """[(first, end)] of the segments cut at `seams` (None: every `window` frames); each at least 2 frames."""
    cuts = list(range(window, frames, window)) if seams is None else sorted(set(seams))
    if any(not 2 <= c <= frames - 2 for c in cuts):
        raise ValueError(f"seams must lie in 2 .. {frames - 2} for a {frames}-frame clip (each segment needs 2 "
                         f"frames); got {cuts}")
    edges = [0, *cuts, frames]
    if any(b - a < 2 for a, b in zip(edges[:-1], edges[1:])):
        raise ValueError(f"seams {cuts} leave a segment shorter than 2 frames")
    return list(zip(edges[:-1], edges[1:]))


def read_segment(video: np.ndarray, *, threshold: int = 90) -> dict:
    """Colour, size, velocity and direction of one segment (F, H, W, 3) uint8 (see the module docstring)."""
    fg, area, cx, cy = foreground(video, threshold)
    visible = area > 0
    if not visible.any():
        return {"colour": None, "rgb": None, "area": 0.0, "velocity": None, "speed": math.nan, "direction": None,
                "visible": 0.0}
    median = np.median(video[fg].astype(np.float64), axis=0)                   # (3,)
    frame = np.arange(len(video))[visible]
    if len(frame) >= 2:  # slope of the centroid over the frames the object shows in
        vx, vy = (float(np.polyfit(frame, c[visible], 1)[0]) for c in (cx, cy))
    else:
        vx = vy = math.nan
    reading = read_clip(video, threshold=threshold)
    return {"colour": reading.colour, "rgb": median.tolist(), "area": float(area[visible].mean()),
            "velocity": [vx, vy], "speed": math.hypot(vx, vy), "direction": reading.direction,
            "visible": float(visible.mean())}


def has_room(video: np.ndarray, velocity, *, threshold: int = 90) -> bool:
    """Whether the object of a segment (F, H, W, 3), moved from its frame-0 centroid by `velocity` (px/frame) for
    the segment's F - 1 steps, stays inside the frame. The object is taken as a square of its frame-0 area (a box
    from the extreme foreground pixels would grow with every stray bright pixel of a generated frame). False when
    frame 0 shows no object or the velocity is unknown."""
    _, area, cx, cy = foreground(video[:1], threshold)
    if area[0] == 0 or velocity is None or any(math.isnan(v) for v in velocity):
        return False
    h, w = video.shape[1:3]
    half = math.sqrt(area[0]) / 2                                             # half the side of that square
    steps = len(video) - 1
    return all(min(c, c + v * steps) - half >= -0.5 and max(c, c + v * steps) + half <= size - 0.5
               for c, v, size in ((cx[0], velocity[0], w), (cy[0], velocity[1], h)))


def _compare(seg: dict, first: dict) -> dict:
    """A segment's drift from the first segment."""
    if seg["colour"] is None or first["colour"] is None:
        return {"colour_distance": math.nan, "size_change": math.nan, "speed_change": math.nan}
    return {"colour_distance": float(np.linalg.norm(np.subtract(seg["rgb"], first["rgb"]))),
            "size_change": seg["area"] / first["area"] - 1.0,
            "speed_change": seg["speed"] - first["speed"]}


def seam_errors(video: np.ndarray, seams: list[int], *, method: str = "farneback") -> dict:
    """Warping error of the frame pairs across seams (frame s - 1 to s) against the pairs inside segments.

    Returns:
        {"seam_warping_error", "inside_warping_error" (means over pairs, 0..255), "seam_ratio" (seam / inside),
         "per_seam": [error of each seam's pair]}.
    """
    forward, backward = video_flows(video, method)
    pair = [warping_error(video[i:i + 2], flows=(forward[i:i + 1], backward[i:i + 1]))["warping_error"]
            for i in range(len(video) - 1)]  # pair i: frame i -> i + 1
    at_seam = set(s - 1 for s in seams)
    seam = [pair[i] for i in sorted(at_seam)]
    inside = [e for i, e in enumerate(pair) if i not in at_seam]
    seam_mean, inside_mean = float(np.nanmean(seam)) if seam else math.nan, float(np.nanmean(inside))
    ratio = seam_mean / inside_mean if inside_mean > 0 else (1.0 if seam_mean == 0 else math.inf)
    return {"seam_warping_error": seam_mean, "inside_warping_error": inside_mean, "seam_ratio": ratio,
            "per_seam": seam}


def drift_report(video, *, seams: list[int] | None = None, window: int = 16, threshold: int = 90,
                 method: str = "farneback") -> dict:
    """Per-segment readings of a long single-object clip, their drift from the first segment, and its seams.

    Args:
        video: uint8 (F, H, W, 3) frames or a float (C, F, H, W) clip in [-1, 1].
        seams: the first frame of every window after the first (pipelines/extend.py `seams`); None: a cut
            every `window` frames, each scored as a seam.
        threshold: the probe's foreground threshold (brightest channel above it).
    Returns:
        {"frames", "segments": [{"frames": [first, end], colour, rgb, area, velocity, speed, direction, visible,
         colour_distance, size_change, speed_change, room}], "colour_kept" (every segment the first's colour),
         "direction_kept" (every segment the first's direction), "max_colour_distance", "max_size_change"
         (largest |size_change|), "max_speed_change" (largest |speed_change|), "seams": `seam_errors`,
         "seam_ok" (seam_ratio <= SEAM_RATIO_LIMIT)}.
    """
    frames = as_frames(video)
    bounds = segment_bounds(len(frames), seams, window)
    segments = [{"frames": [a, b], **read_segment(frames[a:b], threshold=threshold)} for a, b in bounds]
    for seg, (a, b) in zip(segments, bounds):
        seg.update(_compare(seg, segments[0]))
        seg["room"] = has_room(frames[a:b], segments[0]["velocity"], threshold=threshold)
    cuts = [a for a, _ in bounds[1:]]
    seam = seam_errors(frames, cuts, method=method) if cuts else {"seam_ratio": math.nan}

    def worst(key):
        values = [abs(s[key]) for s in segments]
        return math.inf if any(math.isnan(v) for v in values) else max(values)

    first = segments[0]
    return {"frames": len(frames), "segments": segments,
            "colour_kept": first["colour"] is not None and all(s["colour"] == first["colour"] for s in segments),
            "direction_kept": first["direction"] is not None
            and all(s["direction"] == first["direction"] for s in segments),
            "max_colour_distance": worst("colour_distance"), "max_size_change": worst("size_change"),
            "max_speed_change": worst("speed_change"), "seams": seam,
            "seam_ok": bool(seam["seam_ratio"] <= SEAM_RATIO_LIMIT)}



def summarize(reports: list[dict], colours: list[str], directions: list[str]) -> dict:
    """Figures over a set of long clips' `drift_report`s, against the colour and direction each clip should show.

    "kept" here means the asked colour / direction (the prompt's, or the given video's labels); the first segment
    (the given video, or the first window) counts for colour, only the later ones for direction (`direction_kept`
    pools them over clips; `direction_kept_every_window` asks it of every segment of a clip, the first included;
    `direction_kept_in_view` pools the later segments in which the object shows in every frame,
    `direction_kept_with_room` those with `room`: where going on as in the first segment was possible).
    Returns:
        {"n", "colour_kept_every_window", "direction_kept", "direction_kept_every_window", "direction_kept_in_view",
         "later_windows_in_view", "direction_kept_with_room", "later_windows_with_room", "seam_warping_error",
         "inside_warping_error", "seam_ratio" (of the means), "per_seam" (mean error at each boundary),
         "seam_ok" (share of clips with their own seam_ratio <= SEAM_RATIO_LIMIT), "per_window": [...]}.
    """
    later = [(s, d) for r, d in zip(reports, directions) for s in r["segments"][1:]]
    in_view = [(s, d) for s, d in later if s["visible"] == 1.0]
    room = [(s, d) for s, d in later if s["room"]]
    seam = [r["seams"] for r in reports if "seam_warping_error" in r["seams"]]
    seam_mean = float(np.nanmean([s["seam_warping_error"] for s in seam])) if seam else math.nan
    inside_mean = float(np.nanmean([s["inside_warping_error"] for s in seam])) if seam else math.nan
    return {"n": len(reports),
            "colour_kept_every_window": _share(all(s["colour"] == c for s in r["segments"])
                                               for r, c in zip(reports, colours)),
            "direction_kept": _share(s["direction"] == d for s, d in later),
            "direction_kept_every_window": _share(all(s["direction"] == d for s in r["segments"])
                                                  for r, d in zip(reports, directions)),
            "direction_kept_in_view": _share(s["direction"] == d for s, d in in_view),
            "later_windows_in_view": len(in_view) / max(len(later), 1),
            "direction_kept_with_room": _share(s["direction"] == d for s, d in room),
            "later_windows_with_room": len(room) / max(len(later), 1),
            "seam_warping_error": seam_mean, "inside_warping_error": inside_mean,
            "seam_ratio": seam_mean / inside_mean if inside_mean > 0 else math.nan,
            "per_seam": [float(np.nanmean(v)) for v in zip(*(s["per_seam"] for s in seam))],
            "seam_ok": _share(r["seam_ok"] for r in reports),
            "per_window": per_window(reports, colours, directions)}


def per_window(reports: list[dict], colours: list[str], directions: list[str]) -> list[dict]:
    """One row per segment index: its frames, the shares of clips showing the asked colour / direction and an
    object in every frame, and the medians of the drift figures (NaN-free clips)."""
    rows = []
    for j in range(max(len(r["segments"]) for r in reports)):
        segs = [(r["segments"][j], c, d) for r, c, d in zip(reports, colours, directions) if j < len(r["segments"])]

        def median(key, segs=segs):
            values = [s[key] for s, _, _ in segs if s[key] is not None and not math.isnan(s[key])]
            return float(np.median(values)) if values else math.nan

        rows.append({"frames": segs[0][0]["frames"], "colour_ok": _share(s["colour"] == c for s, c, _ in segs),
                     "direction_ok": _share(s["direction"] == d for s, _, d in segs),
                     "in_view": _share(s["visible"] == 1.0 for s, _, _ in segs),
                     "room": _share(s["room"] for s, _, _ in segs),
                     "colour_distance": median("colour_distance"), "size_change": median("size_change"),
                     "speed": median("speed"), "speed_change": median("speed_change")})
    return rows


def _share(flags) -> float:
    flags = list(flags)
    return float(np.mean(flags)) if flags else math.nan


def drift_lines(report: dict) -> list[str]:
    """A `drift_report` as printable lines: one per segment, then the verdicts."""
    lines = []
    for s in report["segments"]:
        a, b = s["frames"]
        lines.append(f"frames {a:3d}-{b - 1:<3d}  colour {s['colour'] or '-':8s} "
                     f"(distance {s['colour_distance']:5.1f})  size {s['area']:6.1f} px ({s['size_change']:+.2f})  "
                     f"speed {s['speed']:5.2f} px/frame ({s['speed_change']:+.2f})  direction {s['direction'] or '-'}")
    seam = report["seams"]
    lines.append(f"colour kept: {'yes' if report['colour_kept'] else 'no'}; direction kept: "
                 f"{'yes' if report['direction_kept'] else 'no'}")
    if "seam_warping_error" in seam:
        lines.append(f"seams: warping error {seam['seam_warping_error']:.2f} across window boundaries, "
                     f"{seam['inside_warping_error']:.2f} inside windows ({seam['seam_ratio']:.2f}x; "
                     f"{'within' if report['seam_ok'] else 'over'} the {SEAM_RATIO_LIMIT}x bar)")
    return lines
