"""Parsers of model output: examples, then properties over arbitrary text (Hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.agents.parsing import parse_label, parse_steps, parse_worker_output
from engine.errors import OutputFormatError


def test_reasoning_and_script():
    ans = parse_worker_output("REASONING: add a line.\r\n```python\r\nprint(1)\r\n```\r\nThat's all.")
    assert ans.reasoning == "add a line.\nThat's all." and ans.script == "print(1)\n"


def test_code_first_the_line_after_the_block_is_the_reasoning():
    """worker@2 writes the script, then one line on what changed (issue #26)."""
    ans = parse_worker_output("```python\nprint(1)\n\nprint(2)\n```\nprint(2) is new.")
    assert ans.script == "print(1)\n\nprint(2)\n" and ans.reasoning == "print(2) is new."


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


# -- reasoning first, then the answer (lead, analyzer, judge): strict, in the text and JSON forms --------
from engine.agents.parsing import (  # noqa: E402
    parse_analyzer_output,
    parse_judge_output,
    parse_lead_output,
)
from engine.agents.shapes import ANALYZER, JUDGE, LEAD, WORKER  # noqa: E402

# What the grammars allow on a line of prose: no newline, no backtick.
prose = st.text(st.characters(blacklist_characters="\n\r`", blacklist_categories=("Cs",)), min_size=1, max_size=80)
prose = prose.filter(lambda s: s.strip() and s == s.strip() and "~~~" not in s)  # a fence is not prose: the parser refuses it


def test_strict_examples():
    assert parse_lead_output("REASONING: it lacks a line\nINSTRUCTION: Print bye.").instruction == "Print bye."
    assert parse_analyzer_output("REASONING: pleased\n\nLABEL: EDIT").label == "further_edit"
    assert parse_analyzer_output('{"reasoning": "ok", "label": "REDO"}').label == "redo"
    assert parse_judge_output("REASONING: A keeps the checks\nVERDICT: A").verdict == "A"


@pytest.mark.parametrize("text, reason", [
    ("Print bye.", "does not start with REASONING"),
    ("REASONING: x", "no INSTRUCTION"),
    ("REASONING: x\nINSTRUCTION: ```python\nprint(1)\n```", "code fence"),
    ("REASONING: x\nINSTRUCTION:   ", "empty"),
    ("REASONING: x\nINSTRUCTION: a\nREASONING: again", "repeats"),
    ('{"reasoning": "x"}', "exactly reasoning, instruction"),
    ('{"reasoning": "x", "instruction": 3}', "must be a str"),
    ('{"reasoning": "x", "instruction": "a"', "not valid JSON"),
])
def test_lead_answers_outside_the_shape_are_refused_with_a_reason(text, reason):
    with pytest.raises(OutputFormatError, match=reason):
        parse_lead_output(text)


@pytest.mark.parametrize("text", ["REASONING: x\nLABEL: MAYBE", "REASONING: x\nLABEL: ACCEPTED REDO", "LABEL: REDO",
                                  "REASONING: x\nLABEL: REDO\nLABEL: EDIT", '{"reasoning": "x", "label": "YES"}'])
def test_analyzer_answers_outside_the_shape_name_no_label(text):
    with pytest.raises(OutputFormatError):
        parse_analyzer_output(text)


@settings(max_examples=200, deadline=None)
@given(reasoning=prose, instruction=prose, label=st.sampled_from(["ACCEPTED", "REDO", "EDIT"]),
       verdict=st.sampled_from(["A", "B"]), form=st.sampled_from(["off", "json"]))
def test_what_a_shape_renders_its_parser_reads_back(reasoning, instruction, label, verdict, form):
    lead_answer = parse_lead_output(LEAD.render({"reasoning": reasoning, "instruction": instruction}, form))
    assert (lead_answer.reasoning, lead_answer.instruction) == (reasoning, instruction)
    analyzer_answer = parse_analyzer_output(ANALYZER.render({"reasoning": reasoning, "label": label}, form))
    assert analyzer_answer.reasoning == reasoning
    assert analyzer_answer.label == {"ACCEPTED": "accepted", "REDO": "redo", "EDIT": "further_edit"}[label]
    assert parse_judge_output(JUDGE.render({"reasoning": reasoning, "verdict": verdict}, form)).verdict == verdict


@settings(max_examples=200, deadline=None)
@given(reasoning=prose, body=st.lists(prose.filter(lambda s: not s.lstrip().startswith(("`", "~"))),
                                      min_size=1, max_size=6), form=st.sampled_from(["off", "json"]))
def test_a_rendered_worker_answer_gives_back_its_whole_script(reasoning, body, form):
    script = "\n".join(body) + "\n"
    answer = parse_worker_output(WORKER.render({"reasoning": reasoning, "script": script}, form))
    assert answer.reasoning == reasoning and answer.script == script.strip("\n") + "\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["REASONING:", "INSTRUCTION:", "LABEL:", "VERDICT:", "**", "```", "{", "}", '"',
                                 "reasoning", "label", ":", ",", "\n", " ", "A", "REDO", "EDIT", "x", "\r\n"]),
                max_size=40).map("".join))
def test_strict_parsers_return_a_whole_answer_or_a_typed_error(text):
    for parse in (parse_lead_output, parse_analyzer_output, parse_judge_output):
        try:
            answer = parse(text)
        except OutputFormatError:
            continue
        if parse is parse_lead_output:  # never a fence, never half of the format
            assert answer.instruction.strip() and "```" not in answer.instruction
            assert not any(line.strip().upper().startswith(("REASONING:", "INSTRUCTION:"))
                           for line in answer.instruction.split("\n")[1:])
        if parse is parse_analyzer_output:
            assert answer.label in ("redo", "further_edit", "accepted")
        if parse is parse_judge_output:
            assert answer.verdict in ("A", "B")


def test_plain_instructions_from_unconstrained_teachers_still_count_but_fences_do_not():
    from engine.agents.lead import parse_instruction
    from engine.teachers.base import Generation

    assert parse_instruction(Generation("Add a print of bye."), "step") == ("Add a print of bye.", False)
    assert parse_instruction(Generation("The instruction should be: ```python ```"), "the step") == ("the step", True)
    # held to the shape and still outside it (cut at max_tokens): the step stands in
    assert parse_instruction(Generation("REASONING: it needs", constraint="lead@2"), "the step") == ("the step", True)


def test_a_step_of_bare_numbers_is_no_step():
    """Seen with the embedded SmolLM2 under the planner's grammar: "1. 1. 1. 1. ..." on one line, which
    became the session's only step. Leading list numbers go; a line with no words is no step."""
    assert parse_steps("1. 1. 1. 1. 1. 1. 1. 1.", 8) == []
    assert parse_steps("1. 1. Add a --loud flag\n2. 2) Print it", 8) == ["Add a --loud flag", "Print it"]
    assert parse_steps("1. Use 2.5 as the rate", 8) == ["Use 2.5 as the rate"]
