"""The trained student as every layer sees it.

`runs` owns the run-directory layout, `precision` picks the number format the hardware computes
fastest, and `loader` builds a student (base + adapter) for the engine's student backend, the
trainer's eval and export, and the app. Here rather than in `trainer/` because the engine must load
students too and never imports the trainer (see `runs`).
"""
