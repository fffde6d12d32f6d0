"""turbo: one-step image translation (pix2pix-turbo / CycleGAN-turbo) for datasets and videos."""

__version__ = "0.1.0"
