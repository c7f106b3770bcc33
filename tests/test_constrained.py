"""Constrained answers on the real embedded teacher (SmolLM2-135M): every shape, the logprobs' meaning, scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.agents import analyzer
from engine.agents.call import generate
from engine.agents.parsing import parse_analyzer_output, parse_judge_output, parse_lead_output, parse_steps, parse_worker_output
from engine.config import AnalyzerConfig, TeacherConfig
from engine.prompts import DEFAULT_BOOK
from engine.teachers.base import SamplingParams
from engine.teachers.choices import choice_logprobs
from engine.teachers.embedded import EmbeddedTeacher, GrammarMask, constraint_gbnf
from engine.agents.shapes import SHAPES
from engine.teachers.sampling import log_softmax

SCRIPT = 'def greet(name):\n    print("hello " + name)\n\n\nfor name in ["ann", "bob", "cy"]:\n    greet(name)\n'
REQUEST = "greet should take an optional greeting word, default hello, and print greetings for three names"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held():
    return EmbeddedTeacher(TeacherConfig(name="smollm2", constrain="grammar", top_logprobs=5))


def calls():
    return {
        "worker": DEFAULT_BOOK.worker(REQUEST, REQUEST, None, SCRIPT),
        "planner": DEFAULT_BOOK.planner(REQUEST, SCRIPT, 3),
        "lead": DEFAULT_BOOK.lead(REQUEST, "Add an optional greeting word", SCRIPT),
        "analyzer": DEFAULT_BOOK.analyzer("no, that only removed a blank line", "Add an optional greeting word"),
        "judge": DEFAULT_BOOK.judge(REQUEST, SCRIPT, SCRIPT.replace("hello", "hi")),
    }


def test_every_grammar_and_json_schema_compiles_in_llama_cpp(held):
    for shape in SHAPES.values():
        for form in ("grammar", "json"):
            GrammarMask(held.model, constraint_gbnf(shape.constraint(), form), shape.name).close()


def test_every_agent_answers_in_its_shape(held):
    parsers = {"worker": parse_worker_output, "lead": parse_lead_output, "analyzer": parse_analyzer_output,
               "judge": parse_judge_output, "planner": lambda text: parse_steps(text, 3) or pytest.fail(text)}
    for agent, call in calls().items():
        gen = generate(held, call, SamplingParams(temperature=0.3, max_tokens=600, seed=1))
        assert gen.constraint == f"{agent}@2" and gen.prompt_version == call.version
        assert gen.finish_reason == "stop", gen.text  # the grammar ended it, not max_tokens
        parsers[agent](gen.text)
        if agent == "lead":
            assert "```" not in gen.text


def test_worker_answers_parse_on_every_seed(held):
    call = DEFAULT_BOOK.worker(REQUEST, REQUEST, None, SCRIPT)
    for seed in range(3):
        gen = generate(held, call, SamplingParams(temperature=0.8, max_tokens=600, seed=seed))
        assert parse_worker_output(gen.text).script.strip(), gen.text


def test_constrained_logprobs_are_the_models_own_distribution(held):
    """The recorded numbers are the log-softmax of the logits *before* the grammar mask: the KD term's
    assumption (shared/README §8), and what a teacher-forced pass over the same tokens gives."""
    call = DEFAULT_BOOK.worker(REQUEST, REQUEST, None, SCRIPT)
    messages = call.messages("grammar")
    gen = held.generate(messages, SamplingParams(temperature=0.0, max_tokens=120, top_logprobs=5),
                        constraint=call.constraint())
    model = held.model
    with model.lock:
        prompt_ids, _ = model.format_prompt(messages)
        ids = [t.token_id for t in gen.tokens]
        logits = model.all_logits(prompt_ids + ids, len(prompt_ids))
        model.llm.reset()
    unmasked = np.array([log_softmax(row)[tok] for row, tok in zip(logits, ids)])
    recorded = np.array([t.logprob for t in gen.tokens])
    # batched and single-token decoding round differently in llama.cpp (README): agreement, not identity
    assert np.abs(unmasked - recorded).mean() < 0.08
    # greedy, yet the grammar made it write tokens the model did not prefer; their recorded
    # probability is the model's (low), not the mask's renormalized one (~1)
    forced = [t for t in gen.tokens if t.token_id != t.top[0].token_id]
    assert forced and min(t.logprob for t in forced) < -3.0
    for t in gen.tokens:  # top-k of the unmasked distribution: not renormalized over allowed tokens
        assert sum(np.exp(a.logprob) for a in t.top) <= 1.0 + 1e-4


def test_the_json_form_on_the_embedded_backend(tmp_path):
    teacher = EmbeddedTeacher(TeacherConfig(name="smollm2", constrain="json", top_logprobs=0))
    call = DEFAULT_BOOK.analyzer("perfect, thanks!", "Add an optional greeting word")
    gen = generate(teacher, call, SamplingParams(temperature=0.0, max_tokens=120))
    data = json.loads(gen.text)
    assert set(data) == {"reasoning", "label"} and parse_analyzer_output(gen.text).label in ("accepted", "redo", "further_edit")
    assert "JSON object" in call.messages("json")[0]["content"]


def test_choice_scores_match_whole_scores(held):
    messages = calls()["analyzer"].messages("grammar")
    prefix = "REASONING: The user says the change is wrong.\nLABEL:"
    fast = choice_logprobs(held, messages, prefix, [" ACCEPTED", " REDO", " EDIT"])

    class ScoresOnly:  # the generic path: whole teacher-forced scores
        can_score = True
        identity = held.identity

        def score(self, *args, **kwargs):
            return held.score(*args, **kwargs)

    slow = choice_logprobs(ScoresOnly(), messages, prefix, [" ACCEPTED", " REDO", " EDIT"])
    np.testing.assert_allclose(fast, slow, atol=0.15)  # batched vs step-by-step rounding
    assert all(v < 0 for v in fast)


def test_analyzer_scores_give_a_label_or_a_calibrated_unsure(held):
    call = DEFAULT_BOOK.analyzer("perfect, thank you, that is exactly what I wanted", "Add an optional greeting word")
    gen = generate(held, call, SamplingParams(temperature=0.0, max_tokens=96))
    for scoring in ("channel", "labels"):
        result = analyzer.classify(gen, "perfect, thank you, that is exactly what I wanted", teacher=held, call=call,
                                   settings=AnalyzerConfig(scoring=scoring, unsure_below=0.0), form="grammar")
        assert result.source == "scored" and abs(sum(result.probabilities.values()) - 1) < 1e-6
        assert result.label == max(result.probabilities, key=result.probabilities.get)
        unsure = analyzer.classify(gen, "perfect", teacher=held, call=call,
                                   settings=AnalyzerConfig(scoring=scoring, unsure_below=1.0), form="grammar")
        assert (unsure.label, unsure.source) == ("further_edit", "unsure")
    # the channel scorer on plain cases
    examples = analyzer.examples_for(call)
    assert max(analyzer.channel_probabilities(held, examples, "looks good, thanks").items(), key=lambda kv: kv[1])[0] == "accepted"
    more = analyzer.channel_probabilities(held, examples, "nice, but also handle an empty list")
    assert max(more, key=more.get) == "further_edit"


def test_a_cached_context_scores_exactly_as_a_fresh_one(held):
    from engine.prompts import builtin

    messages = builtin.channel_messages("redo", ("no", "wrong, try again"))
    first = held.response_logprob(messages, "that is wrong")
    again = held.response_logprob(messages, "that is wrong")  # from the cache
    assert first == again == pytest.approx(float(held.score(messages, "that is wrong", top_logprobs=0).logprobs.sum()),
                                           abs=1e-5)
