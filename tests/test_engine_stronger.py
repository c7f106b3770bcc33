"""Issue #26: the engine makes its teacher stronger, never weaker (scripted teachers).

The worker works from the request; echoes of the prompt are never passed on or stored; no-op and
destructive proposals never reach the user; the worker samples candidates and shows the best that
runs; a one-change request is one step; a teacher that only echoes stalls with one clear line.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.agents import cheat_guard, planner
from engine.agents.shapes import LEAD, PLANNER, WORKER, WORKER_EXAMPLE_NOTE, WORKER_EXAMPLE_SCRIPT
from engine.config import TeacherConfig
from engine.errors import AttemptsExhausted
from engine.prompts import builtin
from engine.prompts.echo import echo_reason
from engine.session import Session
from engine.session.candidates import vacuous_reasoning
from engine.store import DatasetStore
from engine.store.check import check_data
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, rows_json, worker_answer

ORIGINAL = 'def greet(name):\n    return "hello " + name\n\nprint(greet("Ann"))\n'
TWICE = ORIGINAL + 'print(greet("Ann"))\n'
LOUD = 'def greet(name):\n    return "HELLO " + name\n\nprint(greet("Ann"))\n'
PLACEHOLDER_LEAD = ("REASONING: <one sentence on what the script needs>\nINSTRUCTION: <the instruction for the programmer "
                    "on one line, at most five sentences, in plain words, without code>")


def code_first(script: str, note: str = "greet() is printed twice now.") -> str:
    return f"```python\n{script}```\n{note}"


@pytest.fixture
def greet_file(tmp_path):
    path = tmp_path / "greet.py"
    path.write_text(ORIGINAL)
    return path


def start(store, config, path, answers, request="print the greeting twice", *, candidates=1):
    a = ScriptedTeacher("a", answers)
    config.teachers["a"] = dataclasses.replace(config.teacher("a"), candidates=candidates)
    config.agents["worker"] = ["a"]
    session = Session.start(store, TeacherPool(config, extra={"a": a, "b": a}), config, path, request)
    return session, a


def worker_calls(teacher):
    return [m for agent, m in teacher.calls if agent == "worker"]


# -- the worker works from the request --------------------------------------------------------
def test_the_worker_sees_the_request_the_step_and_a_useful_instruction(store, config, greet_file):
    session, a = start(store, config, greet_file, {"lead": ["REASONING: greet is printed once.\nINSTRUCTION: Call "
                                                            "print(greet(\"Ann\")) a second time at the end."],
                                                   "worker": [code_first(TWICE)]})
    session.plan()
    session.propose()
    user = worker_calls(a)[0][-1]["content"]
    assert "print the greeting twice" in user and 'a second time at the end' in user and ORIGINAL.strip() in user
    assert user.index(ORIGINAL.strip()) < user.index("print the greeting twice")  # the request comes last


def test_a_placeholder_instruction_is_never_passed_on_nor_stored(store, config, greet_file):
    session, a = start(store, config, greet_file, {"lead": [PLACEHOLDER_LEAD, PLACEHOLDER_LEAD],
                                                   "worker": [code_first(TWICE)]})
    session.plan()
    events = []
    session.propose(emit=events.append)
    user = worker_calls(a)[0][-1]["content"]
    assert "<" not in user.split("```")[-1] and "instruction for the programmer" not in user
    assert len([1 for agent, _ in a.calls if agent == "lead"]) == 2  # asked once more, then the step stands in
    session.apply_feedback(session.classify("accept: good"))
    [row] = store.rows(session.id)
    assert row.prompt.instruction == "print the greeting twice"
    assert any("not used" in e.text and "placeholder" in e.text for e in events)


# -- no-op and destructive proposals ------------------------------------------------------------
@pytest.mark.parametrize("proposal, why", [
    (ORIGINAL.replace("\n\n", "\n"), "does not change the script"),
    (ORIGINAL + "# print it twice\n", "does not change the script"),
    ("# greet(name) prints the greeting\n# twice\n", "removes every statement"),
    ('print("hello Ann")\nprint("hello Ann")\n', "removes 1 of the script's 1 functions"),
])
def test_a_proposal_that_does_nothing_is_a_failed_run(store, config, greet_file, proposal, why):
    session, a = start(store, config, greet_file, {"worker": [code_first(proposal), code_first(TWICE)]})
    session.plan()
    events = []
    shown = session.propose(emit=events.append)
    assert shown.script == TWICE  # the no-op never reached the user
    [row] = [r for r in store.rows(session.id) if r.rejected is not None]
    assert row.rejected.kind == "error" and why in row.rejected.error and row.rejected.script == proposal
    lead_then = [m for agent, m in a.calls if agent == "lead"][1][-1]["content"]
    assert why in lead_then  # the reason went back to the lead
    assert any(e.kind == "candidate" and e.data["kind"] == "no-op" for e in events)


def test_a_comment_is_a_change_when_comments_are_asked_for():
    assert cheat_guard.proposal_problem(ORIGINAL, "# says hello\n" + ORIGINAL, "add a comment above greet") is None
    assert cheat_guard.proposal_problem(ORIGINAL, "# says hello\n" + ORIGINAL, "print it twice") is not None


# -- candidates ---------------------------------------------------------------------------------
def test_candidates_failures_are_error_rows_and_the_best_running_one_is_shown(store, config, greet_file):
    boom = TWICE + 'raise SystemExit("boom")\n'
    answers = {"worker": [code_first(boom), code_first(ORIGINAL), code_first(TWICE, "ok"),
                          code_first(TWICE)]}
    session, a = start(store, config, greet_file, answers, candidates=4)
    session.plan()
    events = []
    shown = session.propose(emit=events.append)
    assert len(worker_calls(a)) == 4  # one cycle, four candidates
    # both TWICE candidates run; the one whose reasoning names something comes first ("ok" says nothing)
    assert shown.script == TWICE and shown.reasoning == "greet() is printed twice now."
    kinds = [e.data["kind"] for e in events if e.kind == "candidate"]
    assert kinds == ["failed", "no-op", "ok", "ok"]
    assert [e.data["remaining"] for e in events if e.kind == "candidate"] == [3, 2, 1, 0]
    errors = [r.rejected for r in store.rows(session.id) if r.rejected is not None]
    assert sorted(r.script for r in errors) == sorted([boom, ORIGINAL])
    assert all(r.kind == "error" and r.error for r in errors)
    assert next(e for e in events if e.kind == "proposal").data["candidate"] == 3


def test_candidates_have_their_own_seeds_and_the_others_a_higher_temperature(store, config, greet_file):
    seen = []

    class Recording(ScriptedTeacher):
        def generate(self, messages, sampling, **kw):
            if self.agent_of(messages) == "worker":
                seen.append(sampling)
            return super().generate(messages, sampling, **kw)

    a = Recording("a", {"worker": [code_first(TWICE)] * 3})
    config.teachers["a"] = dataclasses.replace(config.teacher("a"), candidates=3)
    config.agents["worker"] = ["a"]
    session = Session.start(store, TeacherPool(config, extra={"a": a, "b": a}), config, greet_file, "print it twice")
    session.plan()
    session.propose()
    assert len({s.seed for s in seen}) == 3
    assert seen[0].temperature == config.sampling["worker"].temperature
    assert {s.temperature for s in seen[1:]} == {config.session.candidate_temperature}


def test_a_repeated_proposal_is_said_so(store, config, greet_file):
    session, a = start(store, config, greet_file, {"worker": [code_first(TWICE), code_first(TWICE)]})
    session.plan()
    first = session.propose()
    assert first.warnings == []
    session.apply_feedback(session.classify("redo: no"))
    again = session.propose()
    assert again.script == TWICE and "repeated itself" in again.warnings[0]


def test_a_teacher_that_only_echoes_stalls_with_one_line_naming_it(store, config, greet_file):
    echo = code_first(WORKER_EXAMPLE_SCRIPT, WORKER_EXAMPLE_NOTE)
    session, a = start(store, config, greet_file, {"worker": [echo] * 10, "lead": [PLACEHOLDER_LEAD] * 20},
                       candidates=2)
    session.plan()
    with pytest.raises(AttemptsExhausted) as err:
        session.propose()
    assert "teacher 'a'" in str(err.value) and "echo" in str(err.value)
    assert session.stall is not None and "teacher 'a'" in session.stall.reason
    assert all(r.chosen is None for r in store.rows(session.id))
    assert list(store.rows(session.id)) == []  # echoes hold nothing to learn from


# -- the plan ----------------------------------------------------------------------------------
def test_a_one_change_request_is_one_step_without_asking_the_planner(store, config, greet_file):
    session, a = start(store, config, greet_file, {"planner": ["1. Split the request into a few small steps.\n2. x"]})
    assert session.plan() == ["print the greeting twice"]
    assert not [1 for agent, _ in a.calls if agent == "planner"]


def test_a_plan_loses_echoes_checks_and_restatements(store, config, greet_file):
    plan = ("1. Split the request into a few small steps.\n2. Print the greeting twice.\n3. Add a goodbye line.\n"
            "4. Print the greeting two times.\n5. Test the script.\n6. Print greeting twice")
    session, a = start(store, config, greet_file, {"planner": [plan]},
                       request="First, print the greeting twice. Then add a goodbye line.")
    events = []
    assert session.plan(emit=events.append) == ["Print the greeting twice.", "Add a goodbye line.",
                                                 "Print the greeting two times."]
    assert sum("left out" in e.text for e in events) == 3


def test_clean_steps_keeps_at_least_the_request():
    class Gen:
        text = "1. Split the request into a few small steps."
    assert planner.parse_plan(Gen(), "do it", 3, echo_reason).steps == ["do it"]


# -- echoes and vacuous reasoning, as functions ----------------------------------------------------
@pytest.mark.parametrize("text", [
    "<the instruction for the programmer on one line, at most five sentences, in plain words, without code>",
    "<one or two sentences: what you change and why>", builtin.WORKER, builtin.PLANNER.split(". ")[0] + ".",
    WORKER_EXAMPLE_NOTE, "Split the request into a few small steps.", "Write the instruction for this step.",
])
def test_format_and_system_text_are_echoes(text):
    assert echo_reason(text) is not None


@pytest.mark.parametrize("text", ["Print the greeting twice.", "Call greet('Ann') a second time at the end.",
                                  "if a < b and c > d, swap them", "Add type hints to blend."])
def test_answers_are_not_echoes(text):
    assert echo_reason(text) is None


def test_vacuous_reasoning_names_nothing_of_the_script_or_request():
    assert vacuous_reasoning("1. The instruction is clear and concise. 2. The code is well-structured.",
                             ORIGINAL, TWICE, "print the greeting twice")
    assert not vacuous_reasoning("greet() is printed twice now.", ORIGINAL, TWICE, "print the greeting twice")
    assert not vacuous_reasoning("The greeting appears two times.", ORIGINAL, TWICE, "print the greeting twice")


# -- property: nothing stored carries format text -----------------------------------------------
LEAD_ANSWERS = st.sampled_from([
    PLACEHOLDER_LEAD, LEAD.render_text({"reasoning": "x", "instruction": "Write the instruction for this step."}),
    "REASONING: greet is printed once.\nINSTRUCTION: Print the greeting a second time.",
    "REASONING: The loop in total() stops one item early, so the last price is never added.\nINSTRUCTION: In total(), "
    "loop over every item of prices, including the last one, and keep the rest of the script as it is.",
])
WORKER_ANSWERS = st.sampled_from([
    code_first(TWICE), code_first(LOUD, "greet() shouts HELLO now."), code_first(ORIGINAL),
    code_first(WORKER_EXAMPLE_SCRIPT, WORKER_EXAMPLE_NOTE), code_first(TWICE, "<what you changed>"),
    code_first(TWICE, builtin.WORKER), worker_answer(TWICE, "Rewrite the script so that it follows the instruction."),
    code_first("# nothing\n"), "no code at all",
])
FEEDBACK = st.sampled_from(["accept: good", "redo: no", "edit: more"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(leads=st.lists(LEAD_ANSWERS, min_size=1, max_size=6), workers=st.lists(WORKER_ANSWERS, min_size=1, max_size=8),
       feedback=st.lists(FEEDBACK, min_size=1, max_size=4), candidates=st.integers(1, 3),
       plan=st.sampled_from(["1. Split the request into a few small steps.\n2. Print the greeting twice.",
                             "1. <the first step>\n2. Make greet shout.\n3. Test the script."]))
def test_no_stored_field_carries_format_text(shake_env, tmp_path_factory, leads, workers, feedback, candidates, plan):
    from engine.config import load_config

    config = load_config()  # the scripted teachers a and b for every agent (tests/conftest.py)
    config.data_dir = tmp_path_factory.mktemp("data")
    path = tmp_path_factory.mktemp("s") / "greet.py"
    path.write_text(ORIGINAL)
    with DatasetStore(config.data_dir) as store:
        session, _ = start(store, config, path, {"lead": leads, "worker": workers, "planner": [plan]},
                           request="First, print the greeting twice. Then make greet shout.", candidates=candidates)
        session.plan()
        for step_text in session.state.steps:
            assert echo_reason(step_text.text) is None
        for line in feedback:
            if session.status == "done":
                break
            try:
                session.propose()
            except AttemptsExhausted:
                break
            session.apply_feedback(session.classify(line))
        for row in rows_json(store, session.id):
            instruction = row["prompt"]["instruction"]
            assert echo_reason(instruction) is None, instruction
            for part in (row["chosen"], row["rejected"]):
                if part:
                    assert echo_reason(part["reasoning"]) is None, part["reasoning"]
                    assert part["script"].strip() != WORKER_EXAMPLE_SCRIPT.strip()
    assert not [p for p in check_data(config.data_dir, echo=echo_reason) if "not an answer" in p.message
                or "not a step" in p.message]


def test_data_check_names_rows_written_with_format_text(store, config, greet_file):
    """Rows written before issue #26 held the lead's placeholder as the prompt's instruction."""
    from engine.store.schema import Prompt

    session, a = start(store, config, greet_file, {"worker": [code_first(TWICE)]})
    session.plan()
    session.propose()
    session.state.step.prompt = dataclasses.replace(session.state.step.prompt,
                                                    instruction=PLACEHOLDER_LEAD.split("INSTRUCTION: ")[1])
    session.apply_feedback(session.classify("accept: good"))
    problems = check_data(config.data_dir, echo=echo_reason)
    assert any("the prompt's instruction is not an answer" in p.message and "placeholder" in p.message for p in problems)
    assert not [p for p in check_data(config.data_dir) if "not an answer" in p.message]  # the test is opt-in
    assert isinstance(session.state.step.prompt, (Prompt, type(None)))


def test_the_worker_shape_is_code_first_and_shown_by_example():
    assert WORKER.version == 2 and WORKER.text_format.index("```python") < WORKER.text_format.index(WORKER_EXAMPLE_NOTE)
    for shape in (WORKER, LEAD, PLANNER):
        assert "<" not in shape.text_format  # no angle-bracket placeholders to copy


@pytest.mark.slow
def test_a_restored_prompt_state_samples_as_a_fresh_evaluation():
    """Candidates reuse the prompt's KV cache: the second sample starts from the restored state and
    must draw exactly what a fresh evaluation of the prompt draws."""
    from engine.agents import worker
    from engine.teachers.base import SamplingParams
    from engine.teachers.embedded import EmbeddedTeacher

    teacher = EmbeddedTeacher(TeacherConfig("t", n_threads=1))
    messages = worker.worker_messages("print the greeting twice", ORIGINAL)
    sampling = SamplingParams(temperature=0.8, max_tokens=24, seed=3, top_logprobs=2)
    first = teacher.generate(messages, sampling)
    restored = teacher.generate(messages, sampling)
    teacher.model._contexts.clear()
    fresh = teacher.generate(messages, sampling)
    assert first.text == restored.text == fresh.text
    assert [t.logprob for t in restored.tokens] == [t.logprob for t in fresh.tokens]
    assert [t.top for t in restored.tokens] == [t.top for t in fresh.tokens]


@pytest.mark.parametrize("label", ["ACCEPTED", "REDO", "EDIT", "A", "B"])
def test_a_label_or_verdict_is_an_answer_not_an_echo_of_the_examples(label):
    """The analyzer's and the judge's examples end in a label: naming one is answering (`data check`
    flagged every analyzer row's chosen before this)."""
    assert echo_reason(label) is None
