#!/bin/sh
# One command on a GPU machine: turbo's GPU figures (translate fp32/bf16/compile/CUDA graphs at batch 1-16,
# a training step's time and memory, `turbo video` at 1080p) in under 5 minutes, random full-size weights, no
# downloads. Prints the tables and writes benchmarks/results/gpu.json. Arguments go to benchmarks/gpu.py
# (--dry-run: CPU, tiny model; --budget-s; --work DIR to keep the random model between runs).
set -e
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
HF_HUB_OFFLINE=1 exec "$PY" benchmarks/gpu.py "$@"
