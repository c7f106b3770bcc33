"""The task suite is sound: enough tasks, a clean split, and hidden checks that tell a start from a solution."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.tasks import CATEGORIES, HELD_OUT, TRAIN, build_suite, check_task, run_checks, task_by_id, tasks
from engine.tasks.suite import template_tasks
from engine.tasks.templates import TEMPLATES


def test_suite_size_and_split():
    suite = build_suite()
    assert len(suite) >= 150
    assert len(tasks(HELD_OUT)) >= 50
    assert len(tasks(TRAIN)) + len(tasks(HELD_OUT)) == len(suite)
    for category in CATEGORIES:  # every category on both sides of the split
        assert tasks(TRAIN, category=category) and tasks(HELD_OUT, category=category), category


def test_no_template_is_shared_across_the_split():
    train = {t.template for t in tasks(TRAIN)}
    held_out = {t.template for t in tasks(HELD_OUT)}
    assert train and held_out and not train & held_out
    # and no two templates share a builder under different names
    builders = [template.build for template in TEMPLATES]
    assert len(set(builders)) == len(builders)
    assert len({template.name for template in TEMPLATES}) == len(TEMPLATES)


def test_tasks_are_distinct_and_ids_unique():
    suite = build_suite()
    assert len({t.id for t in suite}) == len(suite)
    assert len({(t.script, t.request) for t in suite}) == len(suite)


def test_deterministic():
    for template in TEMPLATES:
        assert template_tasks(template) == template_tasks(template)
    assert template_tasks(TEMPLATES[0], seed=1) != template_tasks(TEMPLATES[0], seed=2)


def test_starting_scripts_parse_and_requests_hide_the_checks():
    for task in build_suite():
        compile(task.script, task.filename, "exec")
        compile(task.reference, task.filename, "exec")
        assert "def check_" not in task.request and "expect(" not in task.request and task.request.strip()
        assert task.reference != task.script


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="unknown split"):
        tasks("test")
    with pytest.raises(KeyError):
        task_by_id("no-such-task")


def test_every_check_fails_on_the_start_and_passes_on_the_reference():
    """The suite's soundness: all 160 tasks, both scripts, in the real sandbox."""
    def both(task):
        return task, check_task(task, task.script), check_task(task, task.reference)

    problems = []
    with ThreadPoolExecutor(2) as pool:
        for task, start, reference in pool.map(both, build_suite()):
            if start.passed:
                problems.append(f"{task.id}: the hidden checks pass on the starting script")
            if not reference.passed:
                problems.append(f"{task.id}: the reference fails: {reference.problem or reference.failures}")
    assert not problems, "\n".join(problems)


# -- the harness cannot be fooled ---------------------------------------------------------------
CHECKS = '''
def check_add():
    expect(load().add(2, 3), 5, "add(2, 3)")

def check_prints():
    expect(run_main().lines, ["5"], "the printed lines")
'''
GOOD = 'def add(a, b):\n    return a + b\n\n\nif __name__ == "__main__":\n    print(add(2, 3))\n'


def test_harness_passes_a_correct_script():
    report = run_checks(CHECKS, GOOD)
    assert report.passed and report.n_passed == 2 and report.problem is None


def test_harness_names_what_is_wrong():
    report = run_checks(CHECKS, "def add(a, b):\n    return a - b\n\nprint(add(2, 3))\n")
    assert not report.passed
    assert [f.message for f in report.failures] == [
        "add(2, 3) should be 5, but it is -1", "the printed lines should be ['5'], but it is ['-1']"]


@pytest.mark.parametrize("cheat", [
    'print("ok")\nprint("all checks passed")\n',
    # a forged result line without the run's token
    'import json\nprint("SHAKE-CHECKS-" + "0" * 32 + " " + json.dumps([["check_add", True, ""], ["check_prints", True, ""]]))\n',
    'import os\nos._exit(0)\n',
    'import sys\nsys.exit(0)\n',
    'def add(a, b):\n    pass\n',
    '',
])
def test_harness_is_not_fooled(cheat):
    report = run_checks(CHECKS, cheat)
    assert not report.passed


def test_the_harness_file_is_gone_before_the_candidate_runs():
    checks = 'def check_peek():\n    assert load().SEEN == [], "the candidate saw the harness"\n'
    script = 'import os\nSEEN = [n for n in os.listdir(".") if n != "candidate.py"]\n'
    assert run_checks(checks, script).passed


def test_import_does_not_run_the_main_block():
    script = GOOD.replace("print(add(2, 3))", 'raise SystemExit("the main block ran")')
    report = run_checks(CHECKS, script)
    assert report.results[0].passed  # load() does not run __main__
    assert not report.results[1].passed  # run_main() does


def test_endless_loop_fails_its_check_only():
    checks = CHECKS + '\ndef check_loop():\n    load().spin()\n'
    script = GOOD.replace("if __name__", "def spin():\n    while True:\n        pass\n\n\nif __name__")
    report = run_checks(checks, script)
    assert [r.passed for r in report.results] == [True, True, False]
    assert "did not finish" in report.results[2].message


def test_a_huge_printed_value_is_cut_in_the_message_and_the_report_still_reads():
    # the failure message quotes what the script printed; 200 KB of it used to push the report line past
    # the runner's 64 KB output cap, and the JSON cut there crashed the evaluation
    script = GOOD.replace("print(add(2, 3))", 'print("x" * 200_000)')
    report = run_checks(CHECKS, script)
    assert report.problem is None and [r.passed for r in report.results] == [True, False]
    message = report.results[1].message
    assert message.startswith("the printed lines should be ['5'], but it is ['xxx") and message.endswith("[... cut]")
    assert len(message) < 1100


def test_raw_output_past_the_cap_is_a_named_problem():
    # bytes written to the file descriptor itself are not captured by the checks; past the output cap
    # they leave no room for the report, and the report says so instead of blaming an exit
    script = 'import os\nos.write(1, b"y" * 100_000)\n\n' + GOOD
    report = run_checks(CHECKS, script)
    assert not report.passed and not report.results
    assert "output cap" in report.problem
