"""Training recipes: one TOML file -> these typed dataclasses (via turbo_cli.config).

Defaults follow the original img2img-turbo CycleGAN-turbo training (docs/design.md §3); the paired recipes
override what differs. Every section is optional in the file; unknown keys are errors.

    recipe = load_recipe("recipes/horse2zebra.toml", ["optim.lr=2e-5", "train.max_steps=1000"])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from turbo_cli.config import load_config
from turbo_cli.errors import ConfigError
from turbo_cli.eval.names import FOLDER_METRICS, select_metrics

TrainingKind = Literal["unpaired", "paired", "paired_stochastic"]
CLIP_B32 = "openai/clip-vit-base-patch32"  # the backbone the original uses for D and the CLIP-sim loss
DIFFAUG_POLICIES = ("color", "translation", "cutout")  # what turbo_cli.train.diffaug implements


@dataclass
class ModelConfig:
    kind: TrainingKind = "unpaired"  # unpaired = CycleGAN-turbo; paired = pix2pix-turbo; *_stochastic = G(x, z, r)
    base_model: str = "stabilityai/sd-turbo"  # hub id or a local folder in the SD-Turbo layout
    rank_unet: int = 128  # original CycleGAN-turbo UNet LoRA rank (pix2pix uses 8)
    rank_vae: int = 4  # original VAE LoRA rank, both models
    train_all: bool = False  # train every weight, not only LoRA/conv_in/skips: for tiny models only
    caption_a: str | None = None  # unpaired: domain A's caption; None = the dataset's fixed_prompt_a.txt
    caption_b: str | None = None  # unpaired: domain B's caption; None = the dataset's fixed_prompt_b.txt
    gradient_checkpointing: bool = False  # trades ~30% speed for much less activation memory (24 GB cards)
    # the latent G's UNet sees in TRAINING: "sample" draws from the VAE posterior as the original's training
    # (`latent_dist.sample()`); "mean" uses its mean, as turbo's inference always does (docs/fidelity.md, Training)
    vae_posterior: Literal["sample", "mean"] = "sample"

    def __post_init__(self):
        if self.rank_unet < 1 or self.rank_vae < 1:
            raise ValueError("rank_unet and rank_vae must be >= 1")


@dataclass
class DataConfig:
    dataset: Path | None = None  # folder with train_A/ train_B/ test_A/ test_B/ (or trainA/...); required
    train_prep: str = "resize_286_randomcrop_256x256_hflip"  # original horse2zebra training prep
    val_prep: str = "no_resize"  # original: validate at the test images' own size
    # the image prep checkpoints record for `turbo translate/video/eval`: an inference prep (no_resize, resize_N,
    # resize_WxH). None: val_prep when inference accepts it, else "no_resize" (the original's inference_paired.py:
    # the input's own size, rounded down to multiples of 8)
    model_prep: str | None = None

    def __post_init__(self):
        if self.model_prep is not None:
            from turbo_cli.io.frames import check_image_prep

            try:
                check_image_prep(self.model_prep)
            except Exception as e:
                raise ValueError(f"model_prep: {str(e).replace('--image-prep ', '')}") from None

    def inference_prep(self) -> str:
        """The image prep a checkpoint of this run records (what translate/video/eval use by default)."""
        if self.model_prep is not None:
            return self.model_prep
        from turbo_cli.io.frames import check_image_prep

        try:
            return check_image_prep(self.val_prep)
        except Exception:  # a training-only prep (a crop: resized_crop_512)
            return "no_resize"
    num_workers: int = 0  # decoding runs in the main process by default: simplest, enough at batch 1


@dataclass
class LossConfig:
    # unpaired (CycleGAN-turbo), the original's weights
    lambda_cycle: float = 1.0  # L1 part of the cycle-consistency loss
    cycle_lpips: float = 10.0  # LPIPS part of the cycle loss: perceptual structure dominates
    lambda_idt: float = 1.0  # L1 part of the identity loss G_a2b(b) ~ b
    idt_lpips: float = 1.0  # LPIPS part of the identity loss
    lambda_gan: float = 0.5  # adversarial weight, for G and for D (both models)
    # vision-aided-loss's GAN loss type (the original's --gan_loss_type): "multilevel_sigmoid" (target 1 for real
    # and for G) or "multilevel_sigmoid_s" (target 0.8). None: the original's default for the family, resolved when
    # training starts (Recipe.gan_loss): unpaired multilevel_sigmoid, paired multilevel_sigmoid_s
    gan_loss: Literal["multilevel_sigmoid", "multilevel_sigmoid_s"] | None = None
    # paired (pix2pix-turbo), the original's weights
    lambda_l2: float = 1.0  # pixel MSE to the target
    lambda_lpips: float = 5.0  # LPIPS to the target
    lambda_clipsim: float = 5.0  # 1 - cos(CLIP image, CLIP caption); 0 skips loading CLIP
    # "all_pairs": the original's 1 - mean over ALL B x B image/caption CLIP logits / 100; "own_caption": each image
    # against its own caption only (turbo's reading of the paper; equal at batch 1). docs/fidelity.md, Training
    clipsim_pairs: Literal["all_pairs", "own_caption"] = "all_pairs"
    # backbones
    lpips_net: Literal["vgg", "alex", "squeeze"] = "vgg"  # the original uses LPIPS-VGG
    # LPIPS's trunk (torchvision's ImageNet weights for lpips_net) from a local file, or a folder holding it under
    # torchvision's name (e.g. vgg16-397923af.pth): for machines that cannot download. None: torch hub's cache/download
    lpips_weights: Path | None = None
    disc_backbone: str = CLIP_B32  # CLIPVisionModelWithProjection: hub id or local folder
    clip_model: str = CLIP_B32  # CLIPModel for the CLIP-sim loss: hub id or local folder
    diffaug: str = "color,translation,cutout"  # DiffAugment policy in front of D (original's)

    def __post_init__(self):
        unknown = [p for p in self.diffaug.split(",") if p.strip() and p.strip() not in DIFFAUG_POLICIES]
        if unknown:
            raise ValueError(f"diffaug: unknown policy {unknown[0]!r} (known: {', '.join(DIFFAUG_POLICIES)})")


@dataclass
class OptimConfig:
    lr: float = 1e-5  # original horse2zebra command line (its code default is 5e-6)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW defaults, as the original
    weight_decay: float = 1e-2  # original
    eps: float = 1e-8  # original
    grad_clip: float = 10.0  # max grad norm, unpaired original (paired: 1.0); 0 disables
    lr_scheduler: Literal["constant", "constant_with_warmup"] = "constant"  # original: constant
    warmup_steps: int = 0  # linear warm-up steps for constant_with_warmup
    grad_accumulation: int = 1  # micro-batches per optimizer step: a bigger batch in the same memory

    def __post_init__(self):
        if self.grad_accumulation < 1:
            raise ValueError("grad_accumulation must be >= 1")


@dataclass
class TrainConfig:
    max_steps: int = 25_000  # original horse2zebra length
    batch_size: int = 1  # per process; the original h2z used 1 (memory)
    seed: int = 42  # drives init, data order and augmentation: the same seed gives the same run
    mixed_precision: Literal["no", "bf16"] = "no"  # bf16 autocast; fp16 is not offered (it broke the original)
    checkpoint_every: int = 500  # steps between checkpoints (original's checkpointing_steps)
    keep_last: int = 3  # older checkpoints are deleted
    output_dir: Path = Path("runs/turbo")  # checkpoints, resolved recipe, validation grids, TensorBoard
    r_range: tuple[float, float] = (0.0, 1.0)  # paired_stochastic: r ~ U(lo, hi) per batch

    def __post_init__(self):
        if self.max_steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.keep_last < 1:
            raise ValueError("max_steps, batch_size, checkpoint_every and keep_last must be >= 1")
        lo, hi = self.r_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"r_range must satisfy 0 <= lo <= hi <= 1, got {list(self.r_range)}")


@dataclass
class EvalConfig:
    every: int = 500  # steps between validations (0: never); the original validated every 250-500
    num_images: int = 8  # test images translated per validation (grid rows)
    metrics: list[str] = field(default_factory=list)  # `turbo eval` folder metrics of the outputs, e.g. ["fid"]
    metric_images: int = -1  # test images translated for the metrics; -1 = all (FID needs many), as the original

    def __post_init__(self):
        try:  # the eval package's names (fid, kid, dino_struct, ...): the training log uses the same keys
            select_metrics(self.metrics, FOLDER_METRICS, option="metrics", error=ConfigError)
        except ConfigError as e:
            raise ValueError(str(e)) from None  # turbo_cli.config adds the file and the section


@dataclass
class LogConfig:
    every: int = 10  # steps between scalar logs
    tensorboard: bool = True  # event files in OUTPUT/tb
    wandb: bool = False  # needs `pip install wandb`
    wandb_project: str = "turbo"
    progress: bool = True  # `turbo train` shows a step bar and, every `every` steps, the losses


@dataclass
class Recipe:
    name: str = "turbo"  # shown in logs
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def gan_loss(self) -> str:
        """[loss] gan_loss, or the original's --gan_loss_type default for the family (resolved late, so that
        `--set model.kind=paired` also changes the default)."""
        if self.loss.gan_loss is not None:
            return self.loss.gan_loss
        return "multilevel_sigmoid_s" if self.paired else "multilevel_sigmoid"

    @property
    def paired(self) -> bool:
        return self.model.kind != "unpaired"


def load_recipe(path: Path | str | None, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Defaults < the TOML file < `--set section.key=value` overrides."""
    return load_config(Recipe, path, overrides)
