"""Evaluation: metrics as pure math on arrays (FID/KID through clean-fid, DINO-Struct-Dist, LPIPS, colour, edges,
brightness, temporal flicker), the networks they need (loaded from hub ids or a local folder, injectable), typed
results with one vocabulary of metric names, and the report (JSON, HTML, grid).

Imports the root modules and `io/` (to read image folders and videos); never `engine/`, `jobs/` or `cli/`:
evaluating a model means translating first, which `jobs/evaluate.py` composes.
"""
