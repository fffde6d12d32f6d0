"""Training CycleGAN-turbo and pix2pix-turbo: TOML recipes -> typed dataclasses, datasets and image preps, the
paper's objectives (losses, vision-aided discriminator, DiffAugment), and the loop on `accelerate.Accelerator`
(checkpoints, resume, mixed precision, trackers).

Imports the root modules, `engine/` (the generator), `io/` (images) and `eval/` (validation metrics); never
`jobs/` or `cli/`.
"""
