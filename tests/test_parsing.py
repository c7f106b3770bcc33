"""Parsers of model output: examples, then properties over arbitrary text (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.agents.parsing import parse_label, parse_steps, parse_worker_output
from engine.errors import OutputFormatError


def test_reasoning_and_script():
    ans = parse_worker_output("REASONING: add a line.\r\n```python\r\nprint(1)\r\n```\r\nThat's all.")
    assert ans.reasoning == "add a line." and ans.script == "print(1)\n"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "nothing"),
        ("just words", "no ```python"),
        ("```python\nprint(1)\n", "never closed"),
        ("```python\n\n```", "empty"),
        ("```bash\nls\n```", "not Python"),
        ("```python\na=1\n```\n```py\nb=2\n```", "2 Python code blocks"),
    ],
)
def test_malformed_worker_output_has_a_reason(text, reason):
    with pytest.raises(OutputFormatError, match=reason):
        parse_worker_output(text)


def test_other_language_blocks_beside_the_script_are_ignored():
    ans = parse_worker_output("Run it with:\n```bash\npython x.py\n```\n```python\nprint(2)\n```")
    assert ans.script == "print(2)\n"


def test_longer_fences_hold_inner_fences():
    ans = parse_worker_output('````python\ns = """\n```\n"""\n````')
    assert '```' in ans.script


def test_steps_and_labels():
    assert parse_steps("Plan:\n1. Add x\n2) Add y\n- Add z\n1. Add x", 5) == ["Add x", "Add y", "Add z"]
    assert parse_steps("1. a\n2. b\n3. c", 2) == ["a", "b"]
    assert parse_label("ACCEPTED") == "accepted"
    assert parse_label("Further edit.") == "further_edit"
    assert parse_label("redo") == "redo"
    assert parse_label("ACCEPTED, no wait, REDO") is None
    assert parse_label("I am not sure") is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(list("`~ \n\r\tpythonabc=()[]\x1b\\") + ["```", "```python\n", "\n```\n", "[bold]", "\x1b[31m", "~~~"]),
        max_size=120,
    ).map("".join)
)
def test_worker_parser_never_crashes_and_never_yields_half_a_script(text):
    try:
        ans = parse_worker_output(text)
    except OutputFormatError:
        return
    assert ans.script.strip()
    assert ans.script in text.replace("\r\n", "\n").replace("\r", "\n") + "\n"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_step_and_label_parsers_never_crash(text):
    assert len(parse_steps(text, 8)) <= 8
    assert parse_label(text) in (None, "redo", "further_edit", "accepted")


def test_lead_instruction_drops_repeated_paragraphs():
    from engine.agents.lead import parse_instruction
    from engine.teachers.base import Generation

    looping = "Make it upper case.\n\nThe user wants upper case.\n\nThe user wants upper case.\n\n  The user  wants upper case."
    text, fallback = parse_instruction(Generation(looping), "step")
    assert text == "Make it upper case.\n\nThe user wants upper case." and not fallback
    assert parse_instruction(Generation("  \n"), "the step") == ("the step", True)
