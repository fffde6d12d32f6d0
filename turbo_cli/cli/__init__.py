"""The `turbo` command: thin Typer commands, one module per verb, each exposing `register(app)`.

cli/ parses options, makes one call into `jobs/` (or `train/`, `eval/` for their own verbs) and renders what comes
back; it is the only place that imports typer or rich (`ui.py`: the console, `RichProgress`, tables) and the only
place where `TurboError`s become exit codes (`main.py`). It may import every other layer.
"""
