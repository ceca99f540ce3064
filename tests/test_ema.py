"""The weight EMA: its warmup makes it a power-function average whose length the warmup sets."""

import pytest
import torch
from torch import nn

from stillmotion.train.config import make_config
from stillmotion.train.ema import EMA


def _averaged_ramp(warmup: float, steps: int = 400, decay: float = 0.9999) -> float:
    """EMA of a weight that equals t after update t: the average's centre, as a fraction of the run."""
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay, warmup)
    for t in range(1, steps + 1):
        with torch.no_grad():
            model.weight.fill_(float(t))
        ema.update(model)
    return ema.shadow.weight.item() / steps


@pytest.mark.parametrize("warmup", [4.0, 10.0])
def test_warmup_sets_the_power_average(warmup):
    # weights grow like t^(warmup - 2), so the average of a ramp sits at (warmup - 1) / warmup of the run
    assert _averaged_ramp(warmup) == pytest.approx((warmup - 1) / warmup, abs=0.01)


def test_decay_caps_the_warmup():
    # decay 0.9 is reached after ~80 steps at warmup 10; from then on the average spans ~10 steps, not 10 %
    assert _averaged_ramp(10.0, steps=400, decay=0.9) == pytest.approx((400 - 9) / 400, abs=0.005)


def test_state_round_trip_keeps_the_warmup():
    model = nn.Linear(2, 2)
    ema = EMA(model, 0.99, warmup=4.0)
    ema.update(model)
    other = EMA(nn.Linear(2, 2), 0.5)
    other.load_state_dict(ema.state_dict())
    assert (other.decay, other.warmup, other.step) == (0.99, 4.0, 1)
    old = {k: v for k, v in ema.state_dict().items() if k != "warmup"}  # saved before warmup was an option
    other.load_state_dict(old)
    assert other.warmup == 10.0


def test_impossible_warmup_is_refused():
    with pytest.raises(ValueError, match="ema_warmup must be > 1"):
        make_config("shapes-tiny", {"ema_warmup": "1"})
    with pytest.raises(ValueError, match="warmup must be > 1"):
        EMA(nn.Linear(1, 1), 0.99, warmup=0.5)
