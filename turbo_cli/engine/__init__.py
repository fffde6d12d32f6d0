"""The model: tensors in, tensors out (torch, diffusers, peft, transformers, safetensors; never PIL or av).

The one-step generator and its skip-connected VAE, LoRA as the original attaches it and the one answer to what
trains and what is saved, model families and their defaults, the base model (hub id or local folder), checkpoint
formats (the original pickles, turbo's safetensors), the named models, the batched `Translator`, and the tiny
SD-Turbo-shaped base the tests build. Imports only the root modules (errors, atomic, hub, device, progress).
"""
