"""The original img2img-turbo inference script (src/inference_unpaired.py) looped over a folder in ONE process: the
reference `turbo translate` is measured against by benchmarks/cold_start.py.

    python benchmarks/original_loop.py IN_DIR OUT_DIR --model demo

Per image, as the original: PIL open, Lanczos resize to the model's size, ToTensor + Normalize, the generator at
batch 1 in fp32 under no_grad, ToPILImage, Lanczos resize back to the input's size, save. The weights come from
turbo's loader (the original cannot read the demo model), built once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The original's imports, stated outright: its model module (cyclegan_turbo.py) imports transformers, diffusers, peft,
# requests and tqdm at the top. Importing them here keeps the reference's start-up what the original pays, however
# lazily turbo's own loader comes to import.
import diffusers  # noqa: F401
import peft  # noqa: F401
import requests  # noqa: F401
import torch
import tqdm  # noqa: F401
import transformers  # noqa: F401
from PIL import Image
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turbo_cli.io.frames import model_size  # noqa: E402
from turbo_cli.jobs.loading import ModelOptions, build_translator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="folder of images")
    ap.add_argument("output", type=Path)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--image-prep", default=None, help="default: the model's (resize_128x128 for the demo)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    # merged=False: the original runs peft's adapters beside the base weights, not turbo's merged model
    t = build_translator(ModelOptions(model=args.model, image_prep=args.image_prep, device=args.device, dtype="fp32",
                                      compile=False, batch_size=1, merged=False))
    g, emb, prep = t.generator, t.prompt_emb, t.frame_prep.image_prep
    args.output.mkdir(parents=True, exist_ok=True)
    for p in sorted(q for q in args.input.iterdir() if q.suffix.lower() in (".png", ".jpg", ".jpeg")):
        image = Image.open(p).convert("RGB")
        to_model = transforms.Compose([
            transforms.Resize(model_size(image.height, image.width, prep), interpolation=Image.LANCZOS),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ])
        with torch.no_grad():
            x = to_model(image).unsqueeze(0).to(args.device)
            y = g(x, emb, direction=t.direction)  # the direction `turbo translate` runs (a2b for the demo)
        out = transforms.ToPILImage()(y[0].cpu() * 0.5 + 0.5)
        out.resize((image.width, image.height), Image.LANCZOS).save(args.output / p.name)


if __name__ == "__main__":
    main()
