"""`shake train --init-from`: a run continues from a previous run's adapter or a merged model."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import TrainConfig
from trainer.errors import TrainError
from trainer.recipe import train


def cfg(student, run_dir, **kw):
    base = dict(student=student, max_steps=2, batch_size=2, lr=5e-3, lora_r=4, lora_alpha=8, eval_fraction=0.0,
                warmup_steps=0, schedule="constant", max_length=1024, seed=1, run_dir=str(run_dir))
    return TrainConfig(**{**base, **kw})


def adapter(run_dir):
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def quiet(*args, **kwargs):
    return train(*args, progress=False, log=lambda m: None, **kwargs)


TINY_LR = 1e-12


def test_init_from_a_run_continues_its_adapter(dataset, tiny_student, tmp_path):
    first = quiet(cfg(tiny_student, tmp_path / "a"), dataset)
    # steps of a vanishing learning rate (0 is refused, issue #23) from the first run's adapter give
    # back that adapter: the weights were loaded, not a fresh LoRA initialisation
    same = quiet(cfg(tiny_student, tmp_path / "b", init_from=str(first.run_dir), lr=TINY_LR), dataset)
    fresh = quiet(cfg(tiny_student, tmp_path / "c", lr=TINY_LR), dataset)
    a, b, c = adapter(first.run_dir), adapter(same.run_dir), adapter(fresh.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    lora_b = [k for k in a if "lora_B" in k]
    assert any(not torch.equal(a[k], c[k]) for k in lora_b)  # a fresh adapter starts elsewhere (B = 0)
    assert all(c[k].abs().max() < 1e-9 for k in lora_b)  # B starts at 0 and moves by about the learning rate
    # and training goes on from there
    more = quiet(cfg(tiny_student, tmp_path / "d", init_from=str(first.run_dir)), dataset)
    assert any(not torch.equal(a[k], adapter(more.run_dir)[k]) for k in a)


def test_init_from_by_name_and_from_a_merged_model(dataset, tiny_student, tmp_path):
    from trainer.export import export_student

    first = quiet(cfg(tiny_student, dataset / "runs" / "first"), dataset)
    by_name = quiet(cfg(tiny_student, tmp_path / "n", init_from="first", lr=TINY_LR), dataset)
    for key, value in adapter(first.run_dir).items():
        torch.testing.assert_close(value, adapter(by_name.run_dir)[key])
    paths = export_student(first.run_dir, tmp_path / "export")
    merged = quiet(cfg(tiny_student, tmp_path / "m", init_from=str(paths.merged)), dataset)
    import json

    assert json.loads((merged.run_dir / "config.json").read_text())["student"] == str(paths.merged)


def test_init_from_is_refused_when_it_cannot_continue(dataset, tiny_student, tmp_path):
    first = quiet(cfg(tiny_student, tmp_path / "a"), dataset)
    with pytest.raises(TrainError, match="rank 4"):
        quiet(cfg(tiny_student, tmp_path / "b", init_from=str(first.run_dir), lora_r=8), dataset)
    with pytest.raises(TrainError, match="no training run 'nothing-here'"):
        quiet(cfg(tiny_student, tmp_path / "c", init_from="nothing-here"), dataset)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TrainError, match="no training run, adapter or merged model"):
        quiet(cfg(tiny_student, tmp_path / "d", init_from=str(empty)), dataset)
    assert not (tmp_path / "b").exists() and not (tmp_path / "d").exists()  # refused before writing


def test_shake_train_has_the_flag(capsys):
    from tui.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--init-from" in capsys.readouterr().out
