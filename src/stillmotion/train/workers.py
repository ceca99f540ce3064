"""DataLoader worker processes that render or decode clips (and measure their optical flows) ahead of the step.

Used by the training loop (`MicroBatchClips`) and the motion planner's fit (`planner_fit._MeasuredClips`): each
item goes through as the worker made it, and each worker runs one OpenCV thread, so N workers use N cores.
"""

from __future__ import annotations

import torch


def _as_is(item):
    return item  # the default collate turns numpy arrays into tensors


def _one_thread(_worker: int) -> None:
    """torch already gives each worker one thread; OpenCV (Farnebäck flows) would otherwise take every core."""
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(1)


def worker_loader(dataset, workers: int, **kwargs) -> torch.utils.data.DataLoader:
    """A DataLoader over `dataset`'s items one by one (batch_size=None) in `workers` processes (0: this one)."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=_one_thread,
                                       collate_fn=_as_is, **kwargs)
