"""`shake train` flags: a value that breaks the recipe is refused in one line before anything loads
(`--lr nan`, `--lr -1`, `--lam inf`, `--lora-dropout nan` passed and trained on NaN or nothing)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.config import TrainConfig
from trainer.errors import TrainError
from tui.cli import main

FLOATS = [f.name for f in dataclasses.fields(TrainConfig) if f.type in ("float", float)]


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "--lr must be a finite number, got nan"),
    ("--lr", "-1", "--lr must be > 0"),
    ("--lr", "0", "--lr must be > 0"),
    ("--lam", "inf", "--lam must be a finite number, got inf"),
    ("--lora-dropout", "nan", "--lora-dropout must be a finite number, got nan"),
    ("--lora-dropout", "1", "--lora-dropout must be in [0, 1)"),
    ("--weight-decay", "-0.1", "--weight-decay must be >= 0"),
    ("--max-grad-norm", "0", "--max-grad-norm must be > 0"),
    ("--warmup-steps", "-1", "--warmup-steps must be >= 0"),
    ("--epochs", "inf", "--epochs must be a finite number, got inf"),
])
def test_a_bad_training_flag_is_one_line_and_exit_2(shake_env, capsys, flag, value, message):
    assert main(["train", flag, value]) == 2
    err = capsys.readouterr().err
    assert err == f"shake: {message}\n"


@given(st.sampled_from(FLOATS), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_no_float_setting_takes_a_value_that_is_not_finite(name, value):
    """nan compares False to everything, so a range check alone lets it through."""
    with pytest.raises(TrainError, match=f"--{name.replace('_', '-')} must be a finite number"):
        TrainConfig(**{name: value}).validate()


def test_the_defaults_are_valid():
    TrainConfig().validate()
