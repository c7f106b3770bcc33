"""The distillation experiment (issue #12): collect -> train every variant on the same rows -> evaluate.

`benchmarks/experiment_distill.py` runs it; the modules here hold its parts: `profile` (sizes),
`collect` (headless sessions with the automatic reviewer), `students` (training, GGUF export,
held-out evaluation), `stats` (intervals, paired comparison) and `report` (JSON, Markdown, PNG).
"""
