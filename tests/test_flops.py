"""FLOP counts of CPU attention (torch's FlopCounterMode alone counts them only on CUDA; registry.py teaches it)."""

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import stillmotion.models.registry  # noqa: F401  (registers the CPU attention formulas)


def test_cpu_attention_flops_are_counted():
    b, heads, n, d = 2, 3, 64, 32
    q = torch.randn(b, heads, n, d, requires_grad=True)
    k, v = torch.randn(b, heads, n, d), torch.randn(b, heads, n, d)
    with FlopCounterMode(display=False) as fwd:
        out = F.scaled_dot_product_attention(q, k, v)
    assert fwd.get_total_flops() == 4 * b * heads * n * n * d  # Q K^T and P V, 2 FLOP per multiply-add
    with FlopCounterMode(display=False) as both:
        F.scaled_dot_product_attention(q, k, v).backward(torch.ones_like(out))
    # torch's formula for the flash backward counts five n x n x d matmuls (the scores recomputed, then dV, dP,
    # dQ, dK): 2.5x the forward, so forward + backward is 3.5x.
    assert both.get_total_flops() == 14 * b * heads * n * n * d
