"""Training encodes with a SAMPLE of the VAE posterior, as the original's training (`latent_dist.sample()`);
validation and every checkpoint's inference keep the posterior mean."""

from __future__ import annotations

import pytest
import torch


pytestmark = pytest.mark.usefixtures("one_thread")


def test_sample_in_training_mean_in_eval(tiny_base):
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from turbo_cli.engine.base import load_base
    from turbo_cli.engine.generator import build_cyclegan

    base = load_base(str(tiny_base))
    gen = build_cyclegan(base, 4, 4)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        mean, skips = gen.encode(x, "b2a")
        gen.posterior = "sample"  # what train/build.py sets for the recipe's vae_posterior = "sample"
        gen.eval()
        assert torch.equal(gen.encode(x, "b2a")[0], mean)  # validation: the mean, as inference
        gen.train()
        torch.manual_seed(7)
        z1, skips1 = gen.encode(x, "b2a")
        torch.manual_seed(7)
        z1b, _ = gen.encode(x, "b2a")
        z2, _ = gen.encode(x, "b2a")
        # diffusers' own posterior of the same VAE (the object the original samples from)
        vae = gen.vae_b2a
        h, _ = vae.encoder(x)
        post = DiagonalGaussianDistribution(vae.quant_conv(h))
    assert torch.equal(z1, z1b) and not torch.equal(z1, z2)  # seeded per step by the trainer: reproducible
    assert all(torch.equal(a, b) for a, b in zip(skips1, skips))  # the skip activations do not change
    assert torch.allclose(post.mean * gen.scaling_factor, mean, atol=1e-6)
    # z = (mean + std * eps) * scaling_factor with eps ~ N(0, 1): the standardised draw is a normal sample
    eps = (z1 / gen.scaling_factor - post.mean) / post.std
    assert abs(eps.mean().item()) < 0.2 and abs(eps.std().item() - 1) < 0.2
    assert not torch.allclose(z1, mean)
