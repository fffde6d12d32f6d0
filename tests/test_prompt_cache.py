"""Prompt embeddings cached on disk (issue #13, cold start): a repeat run never loads the text encoder."""

from __future__ import annotations

import os

import pytest
import torch

from turbo_cli.engine.base import CachedPromptEncoder, PromptEncoder, load_base


def test_a_cached_prompt_needs_no_text_encoder_and_equals_the_encoders_output(tiny_base, tmp_path, monkeypatch):
    import transformers

    base = load_base(tiny_base)
    direct = PromptEncoder(base.tokenizer, base.text_encoder)(["a street at night", "a cat"])
    first = CachedPromptEncoder(tiny_base, tmp_path)(["a street at night", "a cat"])
    torch.testing.assert_close(first, direct, rtol=0, atol=0)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2

    def no_encoder(*args, **kwargs):
        raise AssertionError("the text encoder was loaded although the prompt is cached")

    monkeypatch.setattr(transformers.CLIPTextModel, "from_pretrained", no_encoder)
    again = CachedPromptEncoder(tiny_base, tmp_path)(["a cat", "a street at night"])
    torch.testing.assert_close(again, direct.flip(0), rtol=0, atol=0)
    with pytest.raises(AssertionError, match="text encoder was loaded"):
        CachedPromptEncoder(tiny_base, tmp_path)("a prompt never seen")


def test_other_text_encoder_weights_are_another_key(tiny_base, tmp_path):
    import shutil

    copy = tmp_path / "base"
    shutil.copytree(tiny_base, copy)
    cache = tmp_path / "cache"
    CachedPromptEncoder(copy, cache)("a cat")
    weights = next((copy / "text_encoder").glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # "replaced"
    CachedPromptEncoder(copy, cache)("a cat")
    assert len(list(cache.glob("*.safetensors"))) == 2
