"""The jobs the verbs run, and the only layer that composes the others: a model from the user's options
(`loading`), translating a folder (`translate`), a video or a folder of videos (`video`), evaluating a model on a
dataset (`evaluate`), the demo (`demo`), and spreading any of them over processes (`distributed`).

May import `engine/`, `io/`, `eval/`, `train/` and the root modules; never `cli/`. Reports through
`turbo_cli.progress.Progress`, which the CLI renders.
"""
