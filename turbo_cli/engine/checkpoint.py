"""Checkpoints: the original img2img-turbo pickles (read-only, `weights_only=True`) and turbo's own format.

turbo's format is one `.safetensors` file: the generator's tensors that differ from the base model (LoRA, UNet
conv_in, skip convs, plus any base weight the checkpoint overrides) and, in the safetensors metadata under the key
"turbo", a JSON `ModelInfo` (kind, base model, ranks, targets, captions, direction, image prep, ...).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from turbo_cli.atomic import atomic_path
from turbo_cli.engine import lora
from turbo_cli.engine.base import DEFAULT_BASE, BaseModel
from turbo_cli.engine.families import InputRange, Kind, defaults, kind_of
from turbo_cli.engine.generator import GeneratorSpec, TurboGenerator
from turbo_cli.errors import ModelError

FORMAT_VERSION = 1


@dataclass
class ModelInfo:
    """What a checkpoint is and how it expects to be used; saved as JSON with every turbo checkpoint.

    Build one with `ModelInfo.for_family(kind, spec, ...)` so the family's defaults (engine/families.py) fill what
    the caller does not say."""

    kind: Kind
    spec: GeneratorSpec
    base_model: str = DEFAULT_BASE
    name: str = ""
    captions: dict = field(default_factory=dict)  # CycleGAN: {"a2b": caption of B, "b2a": caption of A}
    direction: str | None = None  # CycleGAN default direction
    directions: list = field(default_factory=lambda: ["a2b"])  # directions whose VAE the checkpoint holds
    prompt: str | None = None  # pix2pix default prompt (None: the user must give one)
    image_prep: str = "no_resize"
    input_range: InputRange = InputRange.SIGNED  # CycleGAN [-1, 1]; the released pix2pix models take [0, 1]
    preprocess: str = "none"  # "none" | "canny" | "sketch"
    stochastic: bool = False
    r: float = 1.0  # default strength of a stochastic model (the CLI's --gamma); 1 = deterministic
    extra: dict = field(default_factory=dict)  # free-form provenance (training step, recipe name, ...)

    def __post_init__(self):
        self.kind = kind_of(self.kind)
        self.input_range = InputRange(self.input_range)

    @classmethod
    def for_family(cls, kind: str | Kind, spec: GeneratorSpec, base_model: str = DEFAULT_BASE, *,
                   stochastic: bool = False, **fields) -> "ModelInfo":
        """A ModelInfo whose input range, r and preprocessing default to the family's (`families.defaults`)."""
        d = defaults(kind, stochastic)
        base = dict(input_range=d.input_range, r=d.r, preprocess=d.preprocess, image_prep=d.image_prep)
        if d.kind is Kind.CYCLEGAN:
            base.update(direction="a2b", directions=["a2b", "b2a"])
        return cls(d.kind, spec, base_model, stochastic=d.stochastic, **{**base, **fields})

    def to_json(self) -> str:
        return json.dumps({"format": "turbo", "format_version": FORMAT_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelInfo":
        data = json.loads(text)
        if data.pop("format", None) != "turbo":
            raise ValueError("not a turbo checkpoint")
        version = data.pop("format_version", 0)
        if version > FORMAT_VERSION:
            raise ValueError(f"format version {version} is newer than this turbo understands ({FORMAT_VERSION})")
        data["spec"] = GeneratorSpec(**data["spec"])
        if "gamma" in data and "r" not in data:  # checkpoints written before the field was named r
            data["r"] = data.pop("gamma")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class LoadedModel:
    generator: torch.nn.Module  # generator.TurboGenerator (trainable) or sd.MergedGenerator (inference)
    info: ModelInfo


# ---- loading state into a generator -----------------------------------------------------------------------------
def load_into(generator: TurboGenerator, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` (generator state-dict keys) into the generator; every key must exist with the same shape.

    Base (non-adapter) weights that differ from the base model are remembered as overrides, so turbo's own
    format saves them too.
    """
    own = generator.state_dict()
    missing = [k for k in state if k not in own]
    if missing:
        raise ModelError(f"{source}: checkpoint does not fit the base model: {len(missing)} unknown tensors, "
                         f"e.g. {missing[0]}")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise ModelError(f"{source}: checkpoint does not fit the base model: {key} has shape "
                             f"{tuple(value.shape)}, the base model's is {tuple(own[key].shape)}")
        if not lora.is_adapter(key) and not torch.equal(own[key], value.to(own[key].dtype)):
            generator.base_overrides.add(key)
    generator.load_state_dict(state, strict=False)


def checkpoint_state(generator: TurboGenerator) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()
            if lora.is_saved(k, generator.base_overrides)}


# ---- the original formats ---------------------------------------------------------------------------------------
def read_original(path: Path) -> dict:
    try:
        with warnings.catch_warnings():  # the original pickles use protocol 4, which weights_only reads fine
            warnings.filterwarnings("ignore", message="Detected pickle protocol", module="torch")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: not a readable img2img-turbo checkpoint ({str(e).splitlines()[0][:200]})") \
            from None


def original_kind(sd: dict) -> Kind:
    if "state_dict_unet" in sd and "state_dict_vae" in sd:
        return Kind.PIX2PIX
    if "sd_encoder" in sd and "sd_vae_enc" in sd:
        return Kind.CYCLEGAN
    raise ModelError(f"unrecognised checkpoint layout (keys: {', '.join(sorted(sd)[:8])})")


def original_contents(sd: dict, path: Path, base_source: str = DEFAULT_BASE,
                      info: ModelInfo | None = None) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """What an original pix2pix/CycleGAN pickle (its contents `sd`) describes, and its tensors under generator
    state-dict keys. `info`: preset fields (a published checkpoint's), completed from the file."""
    try:
        kind = original_kind(sd)
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    if kind is Kind.PIX2PIX:
        twin = any(k.startswith("conv_in.conv_in_pretrained.") for k in sd["state_dict_unet"])
        spec = GeneratorSpec("pix2pix", int(sd["rank_unet"]), int(sd["rank_vae"]),
                             {lora.PIX2PIX_UNET_ADAPTER: list(sd["unet_lora_target_modules"])},
                             list(sd["vae_lora_target_modules"]), twin_conv=twin)
        state = {f"unet.{k}": v for k, v in sd["state_dict_unet"].items()}
        state.update({f"vae.{k}": v for k, v in sd["state_dict_vae"].items()})
        directions = ["a2b"]
        # A twin conv_in only exists in the stochastic sketch model: default to its settings (r = 0.4).
        default = ModelInfo.for_family(Kind.PIX2PIX, spec, base_source, stochastic=twin, directions=["a2b"])
    else:
        targets = dict(zip(lora.CYCLEGAN_UNET_ADAPTERS, (list(sd["l_target_modules_encoder"]),
                                                         list(sd["l_target_modules_decoder"]),
                                                         list(sd["l_modules_others"]))))
        spec = GeneratorSpec("cyclegan", int(sd["rank_unet"]), int(sd["rank_vae"]), targets,
                             list(sd["vae_lora_target_modules"]))
        state = {}
        for adapter, key in zip(lora.CYCLEGAN_UNET_ADAPTERS, ("sd_encoder", "sd_decoder", "sd_other")):
            for k, v in sd[key].items():  # peft keys without adapter name: "x.lora_A.weight"
                state["unet." + k.replace(".lora_A.", f".lora_A.{adapter}.").replace(".lora_B.", f".lora_B.{adapter}.")] = v
        # Both dicts hold the WHOLE state of both VAEs (a2b under "vae.", b2a under "vae_b2a."): base weights too.
        state.update(sd.get("sd_vae_enc", {}))
        state.update(sd.get("sd_vae_dec", {}))
        directions = [d for d, prefix in (("a2b", "vae."), ("b2a", "vae_b2a.")) if any(k.startswith(prefix) for k in state)]
        default = ModelInfo.for_family(Kind.CYCLEGAN, spec, base_source,
                                       direction=directions[0] if directions else "a2b")
    info = info or default
    info.kind, info.spec, info.directions = kind, spec, directions
    info.name = info.name or Path(path).stem
    return info, state


def build_generator(base: BaseModel, info: ModelInfo, state: dict[str, torch.Tensor], source: str) -> LoadedModel:
    """The trainable (diffusers + peft) generator `info.spec` describes, holding `state`."""
    generator = TurboGenerator(base, info.spec)
    load_into(generator, state, source)
    return LoadedModel(generator.eval(), info)


def load_original(path: Path, base: BaseModel, info: ModelInfo | None = None, sd: dict | None = None) -> LoadedModel:
    """Build the generator an original pix2pix/CycleGAN pickle describes and load its tensors.

    `sd`: the pickle's contents when the caller has read them already (to fail before loading a base model).
    """
    info, state = original_contents(read_original(path) if sd is None else sd, path, base.source, info)
    return build_generator(base, info, state, str(path))


# ---- turbo's format ---------------------------------------------------------------------------------------------
def read_turbo_info(path: Path) -> ModelInfo:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:
        raise ModelError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:200]})") from None
    if "turbo" not in meta:
        raise ModelError(f"{path}: a safetensors file without turbo metadata (convert original checkpoints with "
                         f"`turbo convert`)")
    try:
        return ModelInfo.from_json(meta["turbo"])
    except (ValueError, TypeError, KeyError) as e:
        raise ModelError(f"{path}: bad turbo metadata ({e})") from None


def read_turbo(path: Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    return read_turbo_info(path), load_file(str(path))


def load_turbo(path: Path, base: BaseModel) -> LoadedModel:
    info, state = read_turbo(path)
    return build_generator(base, info, state, str(path))


def save_turbo(generator: TurboGenerator, info: ModelInfo, path: Path) -> Path:
    """Write turbo's format atomically (temp file beside `path`, then rename). Saves from the raw module."""
    from safetensors.torch import save_file

    generator = getattr(generator, "_orig_mod", generator)  # never save a compiled wrapper's prefixed keys
    info.spec = generator.spec
    with atomic_path(path) as tmp:
        save_file(checkpoint_state(generator), str(tmp), metadata={"turbo": info.to_json()})
    return Path(path)
