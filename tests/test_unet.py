"""Invariants of the space-time U-Net (tiny preset, CPU, seconds)."""

import pytest
import torch

from stillmotion.cond import Cond
from stillmotion.models.registry import UNET_PRESETS, build_unet, count_flops, count_params
from stillmotion.models.unet import SpaceTimeUNet, UNetConfig

D = 384  # MiniLM token size, the tiny preset's text_dim


def randomize(model: SpaceTimeUNet, seed: int = 0, std: float = 0.1) -> SpaceTimeUNet:
    """Replace every parameter (zero-init ones too) by noise, so every branch influences the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            is_norm_scale = "norm" in name and name.endswith("weight")
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if is_norm_scale else 0.0))
    return model


def tiny(seed: int = 0, **overrides) -> SpaceTimeUNet:
    torch.manual_seed(seed)
    return randomize(build_unet("tiny", **overrides), seed).eval()


def text_cond(b: int, length: int = 5, seed: int = 1) -> Cond:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 3:] = False  # batch element 0 has 2 padding tokens
    return Cond(text=torch.randn(b, length, D, generator=g), text_mask=mask)


def video(b: int, frames: int, h: int = 16, w: int = 16, seed: int = 2) -> torch.Tensor:
    return torch.randn(b, 3, frames, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames,h,w", [(1, 16, 16), (3, 16, 16), (8, 16, 16), (3, 32, 32), (1, 32, 16),
                                        (3, 16, 32)])
def test_output_shape_and_zero_init(frames, h, w):
    torch.manual_seed(0)
    net = build_unet("tiny")
    x = video(2, frames, h, w)
    out = net(x, torch.zeros(2), text_cond(2))
    assert out.shape == x.shape
    assert torch.all(out == 0)  # zero-init final conv (DiT / ADM)
    out = randomize(net)(x, torch.zeros(2), text_cond(2))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_tiny_preset_is_tiny_and_flops_counted():
    net = build_unet("tiny")
    assert count_params(net) < 100_000
    assert 0 < count_flops(net, frames=2, size=16) < 1.0
    with pytest.raises(ValueError, match="presets are"):
        build_unet("huge")


def test_config_round_trip():
    cfg = UNET_PRESETS["cpu"]
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        UNetConfig.from_dict({**cfg.to_dict(), "chanels": [1]})
    assert build_unet("tiny").config == UNET_PRESETS["tiny"]


def test_temporal_off_is_image_model_per_frame():
    net = tiny()
    x, nl, cond = video(2, 4), torch.randn(2), text_cond(2)
    with torch.no_grad():
        on = net(x, nl, cond)
        net.set_temporal(False)
        off = net(x, nl, cond)
        per_frame = torch.cat([net(x[:, :, f:f + 1], nl, cond) for f in range(4)], dim=2)
    assert not torch.allclose(on, off, atol=1e-4)  # the random temporal layers did something
    torch.testing.assert_close(off, per_frame, atol=1e-5, rtol=1e-4)


def test_single_frame_equals_image_model_with_same_weights():
    video_net = tiny()
    image_net = build_unet("tiny", temporal=False).eval()
    image_keys = set(image_net.state_dict())
    image_net.load_state_dict({k: v for k, v in video_net.state_dict().items() if k in image_keys})
    x, nl, cond = video(2, 1), torch.randn(2), text_cond(2)
    with torch.no_grad():
        torch.testing.assert_close(video_net(x, nl, cond), image_net(x, nl, cond), atol=1e-6, rtol=1e-5)
    # inflate: image weights into a fresh video model; the new keys are exactly the temporal layers
    fresh = build_unet("tiny")
    new_keys = fresh.inflate(image_net.state_dict())
    assert new_keys and all(("tconv" in k or "tattn" in k or k.startswith(("tpos.", "ttext."))) for k in new_keys)
    assert set(new_keys) | image_keys == set(fresh.state_dict())
    # temporal layers are zero-init residuals: the inflated model is the image model per frame
    with torch.no_grad():
        x4 = video(2, 4)
        per_frame = torch.cat([image_net(x4[:, :, f:f + 1], nl, cond) for f in range(4)], dim=2)
        torch.testing.assert_close(fresh.eval()(x4, nl, cond), per_frame, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="temporal=False"):
        image_net.set_temporal(True)


def test_batch_elements_never_mix():
    net = tiny()
    x = video(3, 4).requires_grad_(True)
    cond = text_cond(3)
    out = net(x, torch.randn(3), cond)
    (grad,) = torch.autograd.grad(out[1].sum(), x)
    assert grad[1].abs().sum() > 0
    assert torch.all(grad[0] == 0) and torch.all(grad[2] == 0)


def test_variable_frames_at_sampling_time():
    net = tiny()
    for frames in (4, 12):
        out = net(video(1, frames), torch.zeros(1), text_cond(1))
        assert out.shape == (1, 3, frames, 16, 16) and torch.isfinite(out).all()


def test_per_frame_noise_level():
    net = tiny()
    x = video(2, 3)
    same = net(x, torch.full((2,), 0.3))
    per = net(x, torch.full((2, 3), 0.3))
    torch.testing.assert_close(same, per)
    assert not torch.allclose(per, net(x, torch.tensor([[0.3, 0.3, -1.0]] * 2)))


def test_text_padding_ignored_and_text_matters():
    net = tiny()
    x, nl, cond = video(2, 3), torch.randn(2), text_cond(2)
    base = net(x, nl, cond)
    padded = cond.text.clone()
    padded[0, 3:] = 1e4  # garbage in padding positions
    torch.testing.assert_close(net(x, nl, Cond(text=padded, text_mask=cond.text_mask)), base)
    longer = Cond(text=torch.cat([cond.text, torch.randn(2, 3, D)], 1),
                  text_mask=torch.cat([cond.text_mask, torch.zeros(2, 3, dtype=torch.bool)], 1))
    torch.testing.assert_close(net(x, nl, longer), base, atol=1e-5, rtol=1e-4)
    other = net(x, nl, text_cond(2, seed=7))
    assert (other - base).abs().amax(dim=(1, 2, 3, 4)).min() > 1e-3  # different text changes both clips


def test_empty_text_rows_do_not_nan():
    net = tiny()
    cond = Cond(text=torch.randn(2, 4, D), text_mask=torch.zeros(2, 4, dtype=torch.bool))
    out = net(video(2, 3), torch.randn(2), cond)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_known_frames_only_where_mask_is_one():
    net = tiny()
    x, nl = video(2, 4), torch.randn(2)
    frames = video(2, 4, seed=5)
    mask = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    base = net(x, nl, Cond(frames=frames, frame_mask=mask))
    garbage = torch.where(mask[:, None, :, None, None] > 0, frames, torch.full_like(frames, 1e3))
    torch.testing.assert_close(net(x, nl, Cond(frames=garbage, frame_mask=mask)), base)
    assert not torch.allclose(net(x, nl, Cond(frames=frames * 0.5, frame_mask=mask)), base, atol=1e-4)
    # no known frames == frames of zeros with mask 0
    no_known = Cond(frames=frames, frame_mask=torch.zeros(2, 4))
    torch.testing.assert_close(net(x, nl, None), net(x, nl, no_known))


def test_bad_input_errors_teach():
    net = build_unet("tiny")
    with pytest.raises(ValueError, match="divisible by 2"):
        net(torch.randn(1, 3, 2, 15, 16), torch.zeros(1))
    with pytest.raises(ValueError, match="noise_level"):
        net(video(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="text_dim"):
        net(video(1, 2), torch.zeros(1), Cond(text=torch.randn(1, 3, 8)))


def test_grad_checkpoint_same_gradients_and_bf16_autocast():
    x, nl, cond = video(2, 3), torch.randn(2), text_cond(2)
    grads = []
    for ckpt in (False, True):
        net = tiny(grad_checkpoint=ckpt).train()
        net(x, nl, cond).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny()(x, nl, cond)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_rope_scores_depend_only_on_frame_offset():
    from stillmotion.models.layers import apply_rope

    q, k = torch.randn(16).expand(7, 16), torch.randn(16).expand(7, 16)  # the same vector at 7 frames
    scores = apply_rope(q[None])[0] @ apply_rope(k[None])[0].T  # (7, 7)
    for offset in range(-6, 7):
        diag = torch.diagonal(scores, offset)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag), atol=1e-5, rtol=1e-5)


def test_frame_position_tells_frames_apart():
    """Identical frames: per-pixel attention over identical frames keeps them identical, so once the temporal
    convolutions (whose zero padding marks the clip's ends) and the space-time attention (whose finite extent
    does too) are zeroed, only the frame-position embedding can tell them apart."""
    from stillmotion.models.layers import SpaceTimeAttention, TemporalConv

    net = tiny()
    for m in net.modules():
        if isinstance(m, (TemporalConv, SpaceTimeAttention)):
            m.zero_init()
    x = video(1, 1).expand(1, 3, 5, 16, 16).contiguous()  # 5 copies of one frame
    with torch.no_grad():
        out = net(x, torch.zeros(1), text_cond(1))
        for m in (net.tpos, net.ttext[-1]):  # position alone, and position x prompt
            m.weight.zero_()
            m.bias.zero_()
        same = net(x, torch.zeros(1), text_cond(1))
    assert (out[:, :, 0] - out[:, :, -1]).abs().max() > 1e-3
    assert torch.allclose(same[:, :, 0], same[:, :, -1], atol=1e-5)


def test_spacetime_rope_scores_depend_only_on_offsets():
    from stillmotion.models.layers import apply_rope

    grid = torch.meshgrid(torch.arange(3), torch.arange(4), torch.arange(4), indexing="ij")
    pos = torch.stack(grid, -1).reshape(-1, 3).float()  # (48, 3)
    q, k = torch.randn(24).expand(48, 24), torch.randn(24).expand(48, 24)  # one vector at every position
    scores = apply_rope(q, pos) @ apply_rope(k, pos).T  # (48, 48)
    offsets = pos[:, None] - pos[None]  # (48, 48, 3)
    for off in [(0, 0, 1), (1, -1, 0), (2, 3, -2)]:
        sel = scores[(offsets == torch.tensor(off, dtype=torch.float32)).all(-1)]
        assert sel.numel() > 1
        torch.testing.assert_close(sel, sel[:1].expand_as(sel), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(scores[0, 1], scores[0, 4])  # a column step and a row step score differently


def test_frame_windows():
    from stillmotion.models.layers import frame_windows

    assert frame_windows(16, 16) == frame_windows(16, 16, shift=True) == [(0, 16)]  # as trained: one window
    assert frame_windows(40, 16) == [(0, 16), (16, 32), (32, 40)]
    assert frame_windows(40, 16, shift=True) == [(0, 8), (8, 24), (24, 40)]
    assert frame_windows(64, 0) == [(0, 64)]


def windowed_attention(window: int, shift: bool = False, channels: int = 32):
    from stillmotion.models.layers import SpaceTimeAttention

    torch.manual_seed(0)
    layer = SpaceTimeAttention(channels, 16, window, shift)
    for p in layer.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return layer


def test_spacetime_windows_are_full_attention_up_to_the_window_and_separate_beyond():
    h = torch.randn(1 * 12, 32, 2, 2)  # (B*F, C, H, W), 12 frames
    full, windowed = windowed_attention(0), windowed_attention(16, shift=True)
    torch.testing.assert_close(windowed(h, 12), full(h, 12))  # 12 <= 16: one window, the same layer

    h = torch.randn(1 * 24, 32, 2, 2, requires_grad=True)  # 24 frames: windows [0, 8), [8, 24) when shifted
    for layer, window in [(windowed_attention(8), [(0, 8), (8, 16), (16, 24)]),
                          (windowed_attention(16, shift=True), [(0, 8), (8, 24)])]:
        out = layer(h, 24)
        for a, b in window:
            (grad,) = torch.autograd.grad(out[a:b].sum(), h, retain_graph=True)  # output frames a..b-1
            reach = grad.abs().amax(dim=(1, 2, 3)) > 0  # (F,): input frames they depend on
            assert reach[a:b].all() and not reach[:a].any() and not reach[b:].any()
    (grad,) = torch.autograd.grad(windowed_attention(0)(h, 24)[:8].sum(), h)
    assert (grad.abs().amax(dim=(1, 2, 3)) > 0).all()  # no window: every frame reaches every other


def test_spacetime_windows_make_attention_flops_linear_in_frames():
    from torch.utils.flop_counter import FlopCounterMode

    def flops(layer, frames: int) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            layer(torch.randn(frames, 32, 4, 4), frames)  # (B*F, C, H, W), B = 1
        return counter.get_total_flops()

    windowed = windowed_attention(16)
    assert flops(windowed, 64) == 2 * flops(windowed, 32) == 4 * flops(windowed, 16)
    full = windowed_attention(0)
    assert flops(full, 64) > 1.5 * flops(windowed, 64)  # all 64 frames: 4x the scores of four 16-frame windows


def test_coordinate_channels_give_absolute_position():
    """coords=True: conv_in reads two more channels per pixel (x, y in [-1, 1]), and the output depends on them."""
    plain, net = tiny(), tiny(coords=True)
    p2 = net.config.patch_size ** 2
    assert net.conv_in.in_channels == plain.conv_in.in_channels + 2 * p2
    assert UNetConfig.from_dict(net.config.to_dict()).coords
    x = video(1, 3)
    with torch.no_grad():
        out = net(x, torch.zeros(1), text_cond(1))
        net.conv_in.weight[:, -2 * p2:] = 0  # the coordinate channels come last
        blind = net(x, torch.zeros(1), text_cond(1))
        assert net(x[:, :, :1], torch.zeros(1), text_cond(1)).shape == (1, 3, 1, 16, 16)  # images too
    assert (out - blind).abs().max() > 1e-3


@pytest.mark.parametrize("patch", [1, 2])
def test_coordinate_channels_grown_into_a_trained_net_change_nothing_until_trained(patch):
    """add_coord_inputs: a net trained without `coords` loads into one with them and computes the same function."""
    from stillmotion.models.unet import add_coord_inputs

    torch.manual_seed(0)
    plain = build_unet("tiny", patch_size=patch)
    for p in plain.parameters():  # a "trained" net: no zero-initialised layer left
        torch.nn.init.normal_(p, std=0.05)
    grown = build_unet("tiny", patch_size=patch, coords=True)
    weights, added = add_coord_inputs(plain.state_dict(), grown.config)
    assert added and weights["conv_in.weight"].shape == grown.conv_in.weight.shape
    grown.load_state_dict(weights)
    x = torch.randn(2, 3, 4, 16, 16)
    cond = Cond(text=torch.randn(2, 5, grown.config.text_dim), text_mask=torch.ones(2, 5, dtype=torch.bool))
    assert torch.allclose(grown(x, torch.zeros(2), cond), plain(x, torch.zeros(2), cond), atol=1e-5)
    grown.conv_in.weight.data[:, -1] += 1.0  # the coordinate channels now matter: the function changes
    assert not torch.allclose(grown(x, torch.zeros(2), cond), plain(x, torch.zeros(2), cond), atol=1e-3)
    assert add_coord_inputs(grown.state_dict(), grown.config)[1] is False  # already fits: unchanged


def test_moving_rope_starts_as_the_static_network_and_loads_its_weights():
    """moving_rope adds zero-initialised velocity maps: the grown network computes what the old one did."""
    old = tiny()
    grown = build_unet("tiny", moving_rope=True)
    missing, unexpected = grown.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and missing and all(".velocity." in k for k in missing)
    grown.eval()
    x, cond = video(2, 5), text_cond(2)
    torch.testing.assert_close(grown(x, torch.zeros(2), cond), old(x, torch.zeros(2), cond))


def test_moving_rope_scores_follow_the_track():
    """In a head moving at v cells per frame, a key v cells further along one frame later scores like a key at the
    same place one frame later does in a static head; the static head scores it differently."""
    from stillmotion.models.layers import SpaceTimeAttention, apply_rope

    layer = SpaceTimeAttention(24, 24, emb_dim=4)  # one head of 24 channels
    with torch.no_grad():
        layer.velocity.bias.copy_(torch.tensor([2.0, -1.0]))  # (column, row) cells per frame
    frames, size = 3, 6
    moving = layer.positions(frames, size, size, torch.zeros(frames, 4))[0, 0].detach()  # (F*H*W, 3)
    static = layer.positions(frames, size, size, None)
    index = lambda f, r, c: (f * size + r) * size + c  # noqa: E731
    q, k = torch.randn(24), torch.randn(24)
    score = lambda pos, a, b: float(apply_rope(q[None], pos[a:a + 1]) @ apply_rope(k[None], pos[b:b + 1]).T)  # noqa: E731
    along = score(moving, index(0, 3, 1), index(1, 2, 3))  # one frame on: one row up, two columns right
    assert abs(along - score(static, index(0, 3, 1), index(1, 3, 1))) < 1e-4
    assert abs(score(static, index(0, 3, 1), index(1, 2, 3)) - along) > 1e-3


def test_a_motion_hint_moves_the_heads_along_its_track():
    """With follow_hint, a hint of dx canvas widths over the clip moves every head dx * W / (F - 1) columns a frame
    (gate 1 at the start); no hint, or a hint marked not given, leaves the layer static (velocities start at 0)."""
    from stillmotion.cond import motion_hint
    from stillmotion.models.layers import SpaceTimeAttention

    layer = SpaceTimeAttention(24, 12, emb_dim=4, follow_hint=True)  # two heads
    layer.zero_init()
    frames, size, emb = 5, 8, torch.zeros(2 * 5, 4)
    hint = torch.tensor([[0.5, -0.25, 1.0], [0.5, -0.25, 0.0]])  # the second clip's hint is not given
    with torch.no_grad():
        pos = layer.positions(frames, size, size, emb, hint)  # (2, heads, F*H*W, 3)
    static = layer.positions(frames, size, size, None)
    last = (frames - 1) * size * size  # frame 4, row 0, column 0
    assert torch.allclose(pos[0, :, last], torch.tensor([4.0, 0.0 + 0.25 * size, 0.0 - 0.5 * size]))
    assert torch.equal(pos[1, 0], static) and torch.equal(pos[1, 1], static)
    assert torch.equal(layer.positions(frames, size, size, emb, motion_hint(None, 2))[0, 0], static)
