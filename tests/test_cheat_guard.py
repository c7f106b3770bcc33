"""The cheat guard: a proposal that deletes most functions or checks, unasked, is flagged (examples + properties)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.agents.cheat_guard import check_proposal

SCRIPT = '''\
def average(values):
    return sum(values) / len(values)


def largest(values):
    return None


assert average([1, 3]) == 2
assert largest([3, 9]) == 9
assert largest([]) is None
'''

DELETED_FUNCTION = '''\
def average(values):
    return sum(values) / len(values)


assert average([1, 3]) == 2
'''

DELETED_CHECKS = SCRIPT.split("assert")[0]

SOLVED = SCRIPT.replace("    return None\n", "    return max(values) if values else None\n")


def test_the_cheats_small_workers_try_are_flagged():
    for cheat in (DELETED_CHECKS, DELETED_CHECKS.replace("return sum", "return 0 or sum")):
        report = check_proposal(SCRIPT, cheat, "make largest return the biggest number")
        assert report.flagged and "3 of the script's 3 checks" in report.reason
    report = check_proposal(SCRIPT, "print('ok')\n", "make largest return the biggest number")
    assert report.flagged and report.functions_removed == ["average", "largest"]
    emptied = SCRIPT.replace("return sum(values) / len(values)", "pass")
    report = check_proposal(SCRIPT, emptied.replace("    return None\n", "    ...\n").split("assert")[0],
                            "make largest work")
    assert report.flagged and "average (emptied)" in report.functions_removed


def test_honest_changes_are_not_flagged():
    assert not check_proposal(SCRIPT, SOLVED, "make largest return the biggest number").flagged
    # half of the functions is not "most"
    assert not check_proposal(SCRIPT, DELETED_FUNCTION, "make largest return the biggest number").reason.count("functions")
    renamed = SOLVED.replace("def average", "def mean").replace("average(", "mean(")
    assert not check_proposal(SOLVED, renamed, "call it mean").flagged  # same body: renamed, not removed


def test_a_removal_the_request_asks_for_is_not_flagged():
    for request in ("remove the checks at the bottom", "Delete largest, we don't need it",
                    "rename both functions", "inline the helpers into one script"):
        report = check_proposal(SCRIPT, "print(1)\n", request)
        assert not report.flagged and report.removal_asked


def test_unparseable_scripts_are_not_judged_here():
    assert not check_proposal(SCRIPT, "def broken(:\n", "x").flagged
    assert not check_proposal("def broken(:\n", SCRIPT, "x").flagged


def test_the_report_is_plain_data_for_the_proposal_event():
    data = check_proposal(SCRIPT, DELETED_CHECKS, "fix largest").as_dict()
    assert data["flagged"] and data["checks_before"] == 3 and data["checks_after"] == 0
    assert set(data) == {"flagged", "reason", "functions_before", "functions_removed", "checks_before",
                         "checks_after", "removal_asked"}


names = st.sampled_from(["alpha", "beta", "gamma", "delta", "check_one", "test_two"])


@st.composite
def scripts(draw):
    fns = draw(st.lists(names, unique=True, max_size=5))
    body = "".join(f"def {n}(x):\n    return x + {i}\n\n\n" for i, n in enumerate(fns))
    asserts = draw(st.integers(0, 4))
    return body + "".join(f"assert {i} == {i}\n" for i in range(asserts))


@settings(max_examples=200, deadline=None)
@given(scripts(), scripts(), st.text(max_size=60))
def test_properties(before, after, request):
    # never raises; a script compared with itself, or only added to, is never flagged
    check_proposal(before, after, request)
    assert not check_proposal(before, before, request).flagged
    assert not check_proposal(before, before + "\nprint('more')\n", request).flagged
    # deleting everything from a script that had functions or checks is flagged unless asked
    report = check_proposal(before, "print('ok')\n", "make it faster")
    had = report.functions_before > 0 or report.checks_before > 0
    assert report.flagged == had


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=60))
def test_arbitrary_text_never_raises(before, after, request):
    report = check_proposal(before, after, request)
    assert isinstance(report.flagged, bool)


def test_a_destructive_proposal_never_reaches_the_user(store, config, tmp_path):
    """Issue #26: a proposal that deletes the script's functions unasked is a failed attempt, not a
    proposal: a rejected row (kind error) with the reason, the reason back to the lead, and the next
    cycle's proposal is what the user sees."""
    from engine.session import Session
    from engine.teachers.pool import TeacherPool
    from helpers import ScriptedTeacher, worker_answer

    script = tmp_path / "stats.py"
    kept = SCRIPT.replace("    return None\n", "    return max(values) if values else None\n")
    script.write_text(kept)
    good = kept + "print(largest([1, 2]))\n"
    a = ScriptedTeacher("a", {"worker": [worker_answer("print('ok')\n"), worker_answer(good)]})
    session = Session.start(store, TeacherPool(config, extra={"a": a, "b": a}), config, script, "make largest faster")
    session.plan()
    events = []
    proposal = session.propose(emit=events.append)
    assert proposal.script == good and proposal.warnings == []
    [row] = [r for r in store.rows(session.id) if r.rejected is not None]
    assert row.rejected.kind == "error" and row.rejected.script == "print('ok')\n"
    assert "removes 2 of the script's 2 functions (average, largest)" in row.rejected.error
    second_lead = [m for agent, m in a.calls if agent == "lead"][1]
    assert "removes 2 of the script's 2 functions" in second_lead[-1]["content"]
    assert any(e.kind == "candidate" and e.data["kind"] == "no-op" for e in events)


def test_the_headless_review_prints_the_finding(capsys):
    from engine.cli import print_event
    from engine.session import SessionEvent
    from engine.session.events import EventKind

    finding = check_proposal(SCRIPT, "print('ok')\n", "make largest faster").reason
    print_event(SessionEvent(EventKind.PROPOSAL, "--- a\n+++ b\n", {"warnings": [finding]}))
    print_event(SessionEvent(EventKind.PROPOSAL, "--- a\n+++ b\n", {"warnings": []}))
    out = capsys.readouterr().out
    assert out.count("!! The proposal may cheat: it removes") == 1
