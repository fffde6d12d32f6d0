"""The policy written next to every number in metrics.json: how it was made (backbone, layer, resize filter, FID
mode, scale), so two reports can be compared honestly and a change of method is visible rather than silent."""

from __future__ import annotations

from turbo_cli.eval import metrics as M

KID_SETTINGS = {"num_subsets": 100, "max_subset_size": 1000, "seed": 0}
FLICKER_MAX_SIDE = 512  # frames are area-downscaled to this long side for flow: steadier flow, 4-10x faster on 1080p


def inception_policy(inception) -> dict:
    """FID/KID: the feature network, clean-fid's mode and its resize."""
    return {"backbone": inception.id, "mode": inception.mode, "resize": inception.resize_policy}


KID_POLICY = {"kernel": "(x.y/d + 1)^3", **KID_SETTINGS, "scale": "raw (papers often print KID x 10^3)"}


def dino_policy(dino) -> dict:
    return {
        "backbone": dino.id,
        "layer": f"{dino.layer_name} (last block): keys of all tokens incl. CLS, heads concatenated",
        "similarity": "cosine self-similarity T x T; score = MSE(input, output), per image, averaged",
        "resize": f"short side {dino.short_side}, aspect kept, no crop (bilinear, antialiased)",
        "normalisation": "ImageNet mean/std",
        "scale": "value is x100 (as papers report it); raw value in extra.raw",
        "pair_size": "output resized to its source's size first (area down / bicubic up)",
    }


def lpips_policy(lpips) -> dict:
    return {"backbone": lpips.id, "pair_size": "output resized to its source's size first"}


COLOR_POLICY = {
    "method": "sliced Wasserstein-1 between pooled pixel colours in CIE Lab (units ~ dE)",
    "pixels": f"each image area-resized to {M.COLOR_THUMB}x{M.COLOR_THUMB}, all pixels pooled",
    "projections": f"{M.COLOR_DIRECTIONS} (3 Lab axes + random, seed 0), {M.COLOR_QUANTILES} quantiles each",
    "weights": "none",
    "extra.source": "the same distance for the untranslated sources (baseline)",
}
EDGE_POLICY = {
    "method": f"F1 of Canny edges (thresholds {M.CANNY_LOW}/{M.CANNY_HIGH}) of the grey image contrast-stretched "
              f"1st..99th percentile, tolerance {M.EDGE_TOLERANCE} px",
    "resize": f"both images to a short side of {M.EDGE_WORK_SIDE} px (output first resized to its source's size)",
    "weights": "none",
}
BRIGHTNESS_POLICY = {"method": "mean Rec.601 luma, 0..255, per image, averaged over the set"}


def flicker_policy(method: str, frame_pairs: int) -> dict:
    return {"method": f"warp output t+1 onto t with optical flow of the INPUT frames ({method}, OpenCV); mean "
                      f"|difference| over valid pixels and channels, 0..255 units",
            "frame_size": f"frames area-downscaled to a long side of at most {FLICKER_MAX_SIDE} px",
            "frame_pairs": frame_pairs,
            "extra.input": "the same warp error of the input video, for comparison: flow errors and occlusions put "
                           "about this much under any output, and a translation that darkens or smooths the frames "
                           "can score below it"}
