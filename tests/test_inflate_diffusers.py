"""Inflating a diffusers UNet2DConditionModel: at step 0 the video model is the image model on every frame."""

import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import UNet2DConditionModel  # noqa: E402

from stillmotion.cond import Cond  # noqa: E402
from stillmotion.diffusion.denoiser import Denoiser  # noqa: E402
from stillmotion.diffusion.schedules import alphas_cumprod_to_sigmas, vp_alphas_cumprod  # noqa: E402
from stillmotion.models.inflate_diffusers import InflatedUNet2D, load_diffusers_unet  # noqa: E402

SD_SIGMAS = alphas_cumprod_to_sigmas(vp_alphas_cumprod("scaled_linear", 1000, 0.00085, 0.012))  # Stable Diffusion


@pytest.fixture(scope="module")
def saved_unet(tmp_path_factory):
    """A tiny randomly initialised image U-Net, saved the way a Stable-Diffusion-class checkpoint is."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32),
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1,
                                cross_attention_dim=12, attention_head_dim=8, norm_num_groups=8)
    path = tmp_path_factory.mktemp("sd") / "unet"
    unet.save_pretrained(path)
    return path


def _inputs(b=2, frames=4):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 3, frames, 16, 16, generator=g)
    cond = Cond(text=torch.randn(b, 5, 12, generator=g), text_mask=torch.ones(b, 5, dtype=torch.bool))
    return x, torch.tensor([-0.5, 0.3]), cond


def test_inflated_equals_image_model_per_frame_at_init(saved_unet):
    image = load_diffusers_unet(saved_unet).eval()
    video = InflatedUNet2D(load_diffusers_unet(saved_unet.parent), SD_SIGMAS, head_dim=8).eval()  # pipeline folder
    assert len(video.temporal) == 8  # one per ResNet block: 2 down, 2 mid, 4 up
    x, noise_level, cond = _inputs()
    with torch.no_grad():
        out = video(x, noise_level, cond)
        for f in range(x.shape[2]):
            ref = image(x[:, :, f], video.timesteps(noise_level), encoder_hidden_states=cond.text).sample
            torch.testing.assert_close(out[:, :, f], ref, rtol=1e-5, atol=1e-5)
    # once the temporal layers are trained, frames see each other: changing frame 0 changes frame 3
    with torch.no_grad():
        for layer in video.temporal.values():
            torch.nn.init.normal_(layer.out.weight, std=0.2)
        x2 = x.clone()
        x2[:, :, 0] += 1
        assert (video(x2, noise_level, cond)[:, :, 3] - video(x, noise_level, cond)[:, :, 3]).abs().max() > 1e-4


def test_a_deep_copy_uses_its_own_temporal_layers(saved_unet):  # EMA keeps a deepcopy of the model
    import copy

    video = InflatedUNet2D(load_diffusers_unet(saved_unet), SD_SIGMAS, head_dim=8).eval()
    shadow = copy.deepcopy(video)
    x, noise_level, cond = _inputs()
    with torch.no_grad():
        before = video(x, noise_level, cond)
        for layer in shadow.temporal.values():
            torch.nn.init.normal_(layer.out.weight, std=0.2)
        assert torch.equal(video(x, noise_level, cond), before)
        assert not torch.allclose(shadow(x, noise_level, cond), before)


def test_sigma_maps_to_the_backbone_timestep_and_trains(saved_unet):
    video = InflatedUNet2D(load_diffusers_unet(saved_unet), SD_SIGMAS, head_dim=8)
    t = video.timesteps(SD_SIGMAS[[0, 500, 999]].log() / 4)
    torch.testing.assert_close(t, torch.tensor([0.0, 500.0, 999.0]), rtol=0, atol=1e-3)
    x, _, cond = _inputs()
    loss = Denoiser(video, "eps").loss(x.clamp(-1, 1), torch.tensor([0.5, 3.0]), cond,
                                       generator=torch.Generator().manual_seed(0)).mean()
    loss.backward()
    assert all(p.grad is not None for p in video.temporal.parameters())


def test_clear_errors(saved_unet, tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_diffusers_unet(tmp_path)
    video = InflatedUNet2D(load_diffusers_unet(saved_unet), SD_SIGMAS, head_dim=8)
    x, noise_level, cond = _inputs()
    with pytest.raises(ValueError, match="known frames are not supported"):
        video(x, noise_level, Cond(text=cond.text, frames=x, frame_mask=torch.ones(2, 4)))
    with pytest.raises(ValueError, match="must increase"):
        InflatedUNet2D(load_diffusers_unet(saved_unet), SD_SIGMAS.flip(0))
