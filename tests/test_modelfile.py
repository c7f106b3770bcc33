"""The Modelfile as Ollama's parser reads it: characters it drops, and PARAMETER values it does not unescape."""

from __future__ import annotations

import re

import jinja2
import pytest

from trainer.errors import TrainError
from trainer.modelfile import PROBES, modelfile, render_go_template

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}{{ sep }}{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant{{ sep }}{% endif %}")


class JinjaTokenizer:
    """The two things `modelfile` asks of a tokenizer: its chat template and its end-of-sequence token."""

    def __init__(self, sep: str = "\n", eos: str = "<|im_end|>") -> None:
        self.chat_template = CHATML
        self.template = jinja2.Environment().from_string(CHATML)
        self.sep = sep
        self.eos_token = eos

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        return self.template.render(messages=messages, add_generation_prompt=add_generation_prompt, sep=self.sep)


def parse_modelfile(text: str) -> tuple[str, list[str]]:
    """TEMPLATE and stops as Ollama's parser hands them on: runes that are not `strconv.IsPrint` are dropped
    (tab and line breaks survive; parser/parser.go `ParseFile`), and a PARAMETER value only loses its
    surrounding quotes (`unquote`)."""
    keep = "".join(ch for ch in text if ch.isprintable() or ch in "\t\n\r")
    template = re.search(r'^TEMPLATE """(.*?)"""$', keep, re.S | re.M).group(1)
    stops = [m.group(1).strip('"') for m in re.finditer(r"^PARAMETER stop (.*)$", keep, re.M)]
    return template, stops


@pytest.mark.parametrize("sep", ["\u00a0", "\u200b", "\ufeff", "\n\u00a0🙂"])
def test_characters_ollama_drops_are_written_as_escapes(sep):
    """A literal with NBSP, ZWSP or U+FEFF was written raw, so Ollama's template lost it while the
    round-trip check passed (fails on 0cf108c)."""
    tokenizer = JinjaTokenizer(sep)
    template, _ = parse_modelfile(modelfile(tokenizer, "./student.gguf"))
    for conversation in PROBES:
        assert render_go_template(template, conversation) == tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True)


def test_stops_are_written_as_ollama_reads_them():
    """`PARAMETER stop` was written with JSON escapes that Ollama never undoes (fails on 0cf108c)."""
    _, stops = parse_modelfile(modelfile(JinjaTokenizer(eos="<\\s>"), "./student.gguf"))
    assert stops == ["<|im_end|>", "<\\s>"]


def test_a_stop_no_modelfile_can_hold_is_refused():
    with pytest.raises(TrainError, match="cannot be written in a Modelfile"):
        modelfile(JinjaTokenizer(eos='end"'), "./student.gguf")
