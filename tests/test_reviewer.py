"""The automatic reviewer: hidden checks, the structural cheat check, varied words; and an episode."""

from __future__ import annotations

import pytest

from engine.agents.analyzer import Classification
from engine.agents.parsing import parse_label
from engine.tasks import task_by_id, tasks
from engine.tasks.cheat import find_cheat
from engine.tasks.reviewer import ACCEPT_LINES, EDIT_LINES, REDO_LINES, Reviewer, phrase
from engine.tasks.task import Task

WITH_CHECKS = '''def add(a, b):
    return a - b


def test_add():
    assert add(2, 3) == 5


assert add(1, 1) == 2
print(add(2, 3))
'''


@pytest.mark.parametrize("after, expected", [
    (WITH_CHECKS.replace("return a - b", "return a + b"), None),
    (WITH_CHECKS.replace("assert add(1, 1) == 2\n", ""), "assert checks"),
    (WITH_CHECKS.replace("assert add(1, 1) == 2", "assert add(1, 1) == 0"), "assert checks"),
    (WITH_CHECKS.replace("def test_add():\n    assert add(2, 3) == 5\n", "").replace("assert add(1, 1) == 2", ""),
     "assert checks"),
    (WITH_CHECKS.replace("return a - b", "pass"), "body of add() was deleted"),
    (WITH_CHECKS.replace("return a - b", "..."), "body of add() was deleted"),
    ("print(5)\n", "assert checks"),
    ("def add(a, b):\n    return a + b\n", "assert checks"),
])
def test_cheats_are_named(after, expected):
    found = find_cheat(WITH_CHECKS, after)
    assert (found is None) if expected is None else (expected in found)


def test_a_deleted_body_and_an_emptied_script():
    start = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n\n\nprint(total([1, 2]))\n"
    assert "body of total() was deleted" in find_cheat(start, "def total(xs):\n    return None\n\n\nprint(total([1, 2]))\n")
    assert "most of the script was deleted" in find_cheat(start, "print(3)\n")
    # a rename (the refactor tasks ask for it) and a shorter rewrite are no cheat
    assert find_cheat(start, start.replace("total", "sum_all")) is None
    assert find_cheat(start, "def total(xs):\n    return sum(xs)\n\n\nprint(total([1, 2]))\n") is None
    assert find_cheat("x = (", "print(1)\n") is None  # unparseable input is the checks' business


def test_the_start_is_redone_and_the_reference_accepted():
    for task in tasks("held_out")[::8]:
        reviewer = Reviewer(task)
        start = reviewer.review(task.script, 1)
        assert start.label in ("redo", "further_edit") and not start.passed and start.problem
        core = start.problem.strip().rstrip(".")
        assert core in start.feedback or (core[:1].upper() + core[1:]) in start.feedback
        done = reviewer.review(task.reference, 2)
        assert done.label == "accepted" and done.passed and done.feedback in ACCEPT_LINES


def test_partly_right_is_a_further_edit_and_a_cheat_is_a_redo():
    task = task_by_id("off_by_one-0")
    fname = task.reference.split("def ")[1].split("(")[0]
    # right for n >= 1, wrong for 0: one check passes, one fails
    partly = task.reference.replace("total = 0", "total = 0\n    if n == 0:\n        return -1")
    review = Reviewer(task).review(partly, 1)
    assert review.label == "further_edit" and review.checks_passed == 1 and f"{fname}(0)" in review.feedback
    emptied = task.script.replace("    total = 0\n    for i in range(1, n):\n        total += i\n    return total\n",
                                  "    pass\n")
    review = Reviewer(task).review(emptied, 1)
    assert review.label == "redo" and review.cheat and "deleted" in review.feedback


def test_wording_varies_and_is_reproducible():
    task = tasks("train")[0]
    feedbacks = {Reviewer(task).review(task.script, cycle).feedback for cycle in range(1, 13)}
    assert len(feedbacks) >= 3
    assert Reviewer(task).review(task.script, 3).feedback == Reviewer(task).review(task.script, 3).feedback
    rng = __import__("random").Random(0)
    for kind, lines in (("redo", REDO_LINES), ("further_edit", EDIT_LINES)):
        text = phrase(kind, "the total is wrong.", rng)
        assert "the total is wrong" in text.lower() and ".." not in text
        assert len(lines) >= 4
    # the words carry no explicit prefix: the analyzer has to read them
    assert not any(line.lower().startswith(("accept:", "redo:", "edit:")) for line in ACCEPT_LINES + REDO_LINES + EDIT_LINES)


def test_an_episode_with_a_scripted_worker_and_an_analyzer_that_errs(shake_env, tmp_path):
    from engine.config import load_config
    from engine.store import DatasetStore
    from engine.session.episode import run_episode
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer

    task = task_by_id("wrong_operator-0")
    broken = task.script.replace("width + height", "width - height")
    teacher = ScriptedTeacher("a", {
        "planner": ["1. Fix the area"],
        "worker": [worker_answer("raise SystemExit(1)\n"), worker_answer(broken), worker_answer(task.reference)],
        # the analyzer calls the Redo line "ACCEPTED" (wrong), then the acceptance "ACCEPTED"
        "analyzer": ["ACCEPTED", "ACCEPTED"],
    })
    config = load_config()
    seen = []
    with DatasetStore(config.data_dir) as store:
        pool = TeacherPool(config, extra={"a": teacher, "b": teacher})
        result = run_episode(store, pool, config, task, tmp_path / "work", max_reviews=3,
                             on_review=lambda review, label: seen.append((review.label, label.label, label.source)))
        rows = list(store.rows())
        assert result.accepted and result.reviews == 2 and result.cycles == 3
        assert (result.analyzer_asked, result.analyzer_agreed) == (2, 1)
        assert seen == [("redo", "redo", "user"), ("accepted", "accepted", "analyzer")]  # the reviewer overrode it
        assert sorted(r.rejected.kind for r in rows) == ["error", "redo"]
        assert all(r.chosen.script == task.reference for r in rows)
        # the analyzer saw the reviewer's words, not a label
        texts = [m[-1]["content"] for agent, m in teacher.calls if agent == "analyzer"]
        assert len(texts) == 2 and all(parse_label(t.split("Feedback:")[1]) is None for t in texts)
        # run again: the finished session is found by its script path, nothing new is done
        again = run_episode(store, pool, config, task, tmp_path / "work", max_reviews=3)
        assert again.session_id == result.session_id and again.accepted and len(list(store.rows())) == len(rows)


def test_a_killed_episode_resumes_its_session(shake_env, tmp_path):
    from engine.config import load_config
    from engine.store import DatasetStore
    from engine.session.episode import run_episode
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer

    task = task_by_id("wrong_operator-0")
    config = load_config()

    class Killed(BaseException):
        pass

    def kill(review, label):
        raise Killed()

    first = ScriptedTeacher("a", {"worker": [worker_answer(task.script + "print(\"still wrong\")\n")]})  # a change, not the fix
    with DatasetStore(config.data_dir) as store:
        with pytest.raises(Killed):
            run_episode(store, TeacherPool(config, extra={"a": first, "b": first}), config, task, tmp_path / "w",
                        on_review=kill)
        assert store.load_state(store.session_ids()[0]).status == "review"  # the proposal waits
        second = ScriptedTeacher("a", {"worker": [worker_answer(task.reference)]})
        result = run_episode(store, TeacherPool(config, extra={"a": second, "b": second}), config, task, tmp_path / "w")
        assert len(store.session_ids()) == 1 and result.reviews == 2 and result.accepted


@pytest.mark.parametrize("user_fix", [False, True])
def test_a_failed_task_is_fixed_by_the_user_when_asked(shake_env, tmp_path, user_fix):
    """user_fix: after its last failing review the reviewer edits the script itself (the reference), so
    the teacher's failures become rejected rows of a step whose chosen is the user's edit."""
    from engine.config import load_config
    from engine.store import DatasetStore
    from engine.session.episode import run_episode
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer

    task = task_by_id("wrong_operator-0")
    broken = task.script.replace("width + height", "width - height")
    other = broken.replace("width - height", "width / height")
    teacher = ScriptedTeacher("a", {"planner": ["1. Fix the area"], "worker": [worker_answer(broken), worker_answer(other)],
                                    "analyzer": ["REDO", "REDO"]})
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        pool = TeacherPool(config, extra={"a": teacher, "b": teacher})
        result = run_episode(store, pool, config, task, tmp_path / "work", max_reviews=2, user_fix=user_fix)
        rows = [r for r in store.rows() if r.is_worker]
        assert result.reviews == 2 and result.cycles == 2
        assert result.accepted is user_fix and result.user_fixed is user_fix
        if not user_fix:
            assert all(r.chosen is None for r in rows)
            return
        kinds = {r.rejected.script: r.rejected.kind for r in rows}
        assert len(rows) == 2 and kinds[other] == "further_edit" and kinds[broken] in ("redo", "further_edit")
        assert all(r.chosen.script == task.reference and r.chosen.origin == "user_edit" for r in rows)
        assert Reviewer(task).review(rows[0].chosen.script, 3).passed  # what the user wrote passes the checks


def test_a_stalled_task_is_written_by_the_user_when_asked(shake_env, tmp_path):
    """user_fix on a stalled step (every attempt malformed: nothing to review): the user's script (the
    reference) is the step's chosen; a malformed answer is never a row, so the step has its one row
    with no rejected."""
    from engine.config import load_config
    from engine.store import DatasetStore
    from engine.session.episode import run_episode
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher

    task = task_by_id("wrong_operator-0")
    teacher = ScriptedTeacher("a", {"planner": ["1. Fix the area"], "worker": ["no code"] * 6})
    config = load_config()
    with DatasetStore(config.data_dir) as store:
        pool = TeacherPool(config, extra={"a": teacher, "b": teacher})
        result = run_episode(store, pool, config, task, tmp_path / "work", max_reviews=2, user_fix=True)
        rows = [r for r in store.rows() if r.is_worker]
        assert result.stalled and result.accepted and result.user_fixed and result.reviews == 0
        assert len(rows) == 1 and rows[0].rejected is None
        assert all(r.chosen.script == task.reference and r.chosen.origin == "user_edit" for r in rows)
