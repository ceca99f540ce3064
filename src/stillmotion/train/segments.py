"""Train one run in segments and judge it after each: quality against training time.

The run is trained to 1/points of its budget, judged, resumed to 2/points, judged, and so on. Resuming is exact
(the checkpoint holds the optimizer, EMA, RNG and data position), so the finished run equals one trained in a
single go; the minutes on the curve are the run's own training wall clock, judging left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stillmotion.checkpoint import load_config
from stillmotion.train.config import TrainConfig
from stillmotion.train.loop import train


def segment_budgets(budget: dict, points: int, share: float = 1.0) -> list[dict]:
    """The cumulative budgets of `points` segments: budget {"minutes": M} or {"steps": N} times share * j / points.

    Step budgets are rounded and strictly increase (at least one step per segment)."""
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")
    parts = []
    for j in range(1, points + 1):
        part = {k: v * share * j / points for k, v in budget.items()}
        if "steps" in part:
            part["steps"] = max(j, round(part["steps"]))
        parts.append(part)
    return parts


def train_in_segments(config_for: Callable[[dict], TrainConfig], budget: dict, points: int, *,
                      judge: Callable[[Path], dict] | None = None,
                      share: float = 1.0, overwrite: bool = False) -> tuple[Path, list[tuple[float, dict]], float]:
    """Train a run in `points` segments, calling `judge(run folder)` after each.

    Args:
        config_for: builds the run's TrainConfig for a cumulative budget ({"minutes": m} or {"steps": n}).
        budget: the whole run's budget, {"minutes": M} or {"steps": N}.
        judge: scores a checkpoint folder (None: train in one go, no curve).
        share: the fraction of `budget` this run gets.
        overwrite: a run already in the folder is moved aside (train/run_folder.py) instead of refused.

    Returns:
        (run folder, [(training minutes so far, judge's scores)], training minutes of the whole run).
    """
    curve, run = [], None
    for j, part in enumerate(segment_budgets(budget, points if judge else 1, share)):
        run = train(config_for(part), resume=j > 0, overwrite=overwrite and j == 0)
        minutes = load_config(run)["record"]["wall_clock_s"] / 60
        if judge is not None:
            curve.append((minutes, judge(run)))
    return run, curve, minutes
