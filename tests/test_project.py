"""Project mode without a sandbox: the root, the ignore rules and bounds, the commands, the copy, the repo map."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from engine.execution import project
from engine.execution.project import Bounds, make_spec
from engine.prompts import repo_map

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "report"


def small_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "main.py").write_text("from helper import add\nimport pkg.tools\nprint(add(1, 2))\n")
    (root / "helper.py").write_text('"""Helpers."""\n\ndef add(a: int, b: int = 1) -> int:\n    """Add them."""\n'
                                    '    return a + b  # BODY\n')
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "tools.py").write_text("class Tool:\n    def use(self, x):\n        return x\n")
    (root / "data.txt").write_text("42\n")
    return root


def test_the_root_is_the_git_work_tree_else_the_scripts_directory_else_the_one_given(tmp_path):
    root = small_project(tmp_path)
    (root / "pkg" / "deep.py").write_text("print(1)\n")
    assert project.find_root(root / "pkg" / "deep.py") == (root / "pkg").resolve()
    (root / ".git").mkdir()
    assert project.find_root(root / "pkg" / "deep.py") == root.resolve()
    assert project.find_root(root / "pkg" / "deep.py", root / "pkg") == (root / "pkg").resolve()
    spec, _ = make_spec(root / "pkg" / "deep.py")
    assert spec.script == "pkg/deep.py" and spec.run == ("python", "pkg/deep.py")


def test_the_ignore_rules_leave_out_vcs_environments_large_files_and_links(tmp_path):
    root = small_project(tmp_path)
    for name in (".git", ".venv", "node_modules", "__pycache__"):
        (root / name).mkdir()
        (root / name / "big").write_bytes(b"x" * 5000)
    (root / "dump.bin").write_bytes(b"\0" * 3000)
    (root / "pkg" / ".git").write_text("gitdir: /elsewhere/.git/worktrees/pkg\n")  # a worktree's .git is a file
    secret = tmp_path / "secret.txt"
    secret.write_text("key")
    (root / "link.txt").symlink_to(secret)
    exposure = project.scan(root, Bounds(max_file_bytes=2000))
    assert exposure.paths == {"main.py", "helper.py", "pkg/__init__.py", "pkg/tools.py", "data.txt"}
    assert exposure.large_files == ("dump.bin",) and exposure.links == ("link.txt",)
    assert set(exposure.ignored_dirs) == {".git", ".venv", "node_modules", "__pycache__", "pkg/.git"}
    assert "5 files" in exposure.summary() and "left out: 5 by name (.git, .venv, __pycache__, ...), 1 large file(s), 1 link(s)" in exposure.summary()


def test_every_bad_input_is_one_line(tmp_path):
    root = small_project(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    cases = [
        (dict(project=other), "does not contain the script"),
        (dict(project=root / "nope"), "is not a directory"),
        (dict(run="python report.py"), "names report.py, which is not in the project"),
        (dict(check="pytest -q tests/test_x.py"), "names tests/test_x.py, which is not in the project"),
        (dict(run="python main.py | head"), "uses shell syntax (|)"),
        (dict(run="bash main.py"), "must start with python or pytest"),
        (dict(run="python 'main.py"), "cannot be split into words"),
        (dict(run="   "), "the run command is empty"),
        (dict(check="python -m no_such_module_anywhere"), "not installed in shake's Python"),
        (dict(stdin=tmp_path / "missing.txt"), "no stdin file at"),
    ]
    for kwargs, words in cases:
        with pytest.raises(InputError) as err:
            make_spec(root / "main.py", **kwargs)
        assert words in str(err.value) and "\n" not in str(err.value), (kwargs, str(err.value))


def test_a_project_over_the_bound_is_refused_in_bytes_and_in_files(tmp_path):
    root = small_project(tmp_path)
    with pytest.raises(InputError, match="too big"):
        make_spec(root / "main.py", bounds=Bounds(max_files=3))
    with pytest.raises(InputError, match="too big"):
        make_spec(root / "main.py", bounds=Bounds(max_bytes=100))
    make_spec(root / "main.py", bounds=Bounds(max_files=5))  # exactly at the bound: fine


def test_commands_name_files_python_and_pytest_alike():
    assert project.named_files(("python", "-u", "-W", "ignore", "report.py", "--month", "3")) == ["report.py"]
    assert project.named_files(("python", "-m", "pytest", "x.py")) == []
    assert project.named_files(("pytest", "-q", "tests/test_a.py::test_b", "-k", "x")) == ["tests/test_a.py"]
    assert project.interpreter_args(("pytest", "-q")) == ["-m", "pytest", "-q"]
    assert project.interpreter_args(("python3", "a.py", "--x")) == ["a.py", "--x"]


def test_the_copy_holds_the_proposal_at_the_scripts_path_world_readable_and_no_link(tmp_path):
    root = small_project(tmp_path)
    os.chmod(root / "helper.py", 0o600)
    (root / "link.py").symlink_to(root / "helper.py")
    spec, _ = make_spec(root / "main.py")
    dest = tmp_path / "copy"
    project.copy_into(spec, {"main.py": "print('proposed')\n"}, dest)
    assert (dest / "main.py").read_text() == "print('proposed')\n"
    assert (root / "main.py").read_text().startswith("from helper")  # the user's file is not touched
    assert (dest / "helper.py").read_text() == (root / "helper.py").read_text()
    assert not (dest / "link.py").exists()
    assert stat.S_IMODE((dest / "helper.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "pkg").stat().st_mode) == 0o755


def test_the_repo_map_gives_signatures_and_docstrings_of_imported_project_modules_only(tmp_path):
    root = small_project(tmp_path)
    script = (root / "main.py").read_text() + "import json\n"
    mapped = repo_map.build(root, "main.py", script)
    assert [m.path for m in mapped.modules] == ["helper.py", "pkg/tools.py"]
    assert "def add(a: int, b: int=1) -> int" in mapped.text and '"""Add them."""' in mapped.text
    assert "class Tool:" in mapped.text and "def use(self, x)" in mapped.text
    assert "BODY" not in mapped.text and "json" not in mapped.text
    assert repo_map.build(root, "main.py", "print(1)\n") == repo_map.RepoMap("", (), ())


def test_the_repo_map_reads_no_link_and_nothing_outside_the_project(tmp_path):
    root = small_project(tmp_path)
    outside = tmp_path / "outside.py"
    outside.write_text("def stolen():\n    pass\n")
    (root / "sneaky.py").symlink_to(outside)
    mapped = repo_map.build(root, "main.py", "import sneaky\nfrom .. import outside\n")
    assert mapped.text == "" and mapped.modules == ()


def test_the_example_projects_map_names_both_sibling_modules():
    mapped = repo_map.build(EXAMPLE, "report.py", (EXAMPLE / "report.py").read_text())
    assert [m.path for m in mapped.modules] == ["money.py", "sales.py"]
    assert "def load_sales(path: str) -> list[Sale]" in mapped.text


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(0, 3000), sizes=st.lists(st.integers(0, 40), min_size=1, max_size=8))
def test_the_repo_map_never_exceeds_its_bound_and_names_what_it_gave(tmp_path_factory, budget, sizes):
    root = tmp_path_factory.mktemp("map")
    names = []
    for i, n in enumerate(sizes):
        body = "".join(f"def f{j}(a, b=2):\n    '''Doc {j} of module {i}.'''\n\n" for j in range(n))
        (root / f"m{i}.py").write_text(body)
        names.append(f"m{i}")
    mapped = repo_map.build(root, "main.py", "".join(f"import {n}\n" for n in names), max_chars=budget)
    assert len(mapped.text) <= budget
    for module in mapped.modules:
        assert f"# {module.path}" in mapped.text
    assert not set(m.path for m in mapped.modules) & set(mapped.left_out)
    assert len(mapped.modules) + len(mapped.left_out) <= len(names)


def test_the_project_records_survive_the_store_codec(tmp_path):
    """What project mode adds to the on-disk format reads back as it was written."""
    from engine.execution.runner import RunResult
    from engine.store.codec import decode, encode
    from engine.store.schema import GivenContext, PendingProposal, Prompt, SessionState, messages_of
    from engine.store.schema import Output

    root = small_project(tmp_path)
    spec, _ = make_spec(root / "main.py", run="python main.py --x 1", check="python helper.py")
    state = SessionState(script_path=str(root / "main.py"), request="r", original_script="a", current_script="a",
                         project=spec)
    assert decode(SessionState, encode(state)).project == spec
    mapped = repo_map.build(root, "main.py", (root / "main.py").read_text())
    context = GivenContext(root=spec.root, script=spec.script, run=spec.run, check=spec.check, modules=mapped.modules,
                           left_out=(), files_sha="0" * 64)
    prompt = Prompt(messages_of([{"role": "user", "content": "x"}]), "do", "a", context=context)
    assert decode(Prompt, encode(prompt)) == prompt
    assert prompt.sha == Prompt(prompt.messages).sha  # the context names what the messages carried; it is not hashed twice
    run = RunResult(0, "out", "", 0.1, False, command="python main.py --x 1",
                    check=RunResult(1, "F", "", 0.2, False, command="python helper.py"))
    proposal = PendingProposal(output=Output(text="t", teacher=None, cycle=1, created_at="now"), step_index=0, step="s",
                               instruction="i", base_script="a", messages=prompt.messages, logprobs=None, run=run)
    back = decode(PendingProposal, encode(proposal)).run
    assert back == run and not back.ok and "check `python helper.py` failed" in back.error_text()


def test_unisolated_runs_use_a_copy_of_the_project_too(tmp_path):
    """`sandbox = "none"` (the user's opt-in) still runs in a copy: the project itself is never the cwd."""
    import tempfile

    from engine.config import RunnerConfig
    from engine.execution import run_script, scratch

    root = small_project(tmp_path)
    spec, _ = make_spec(root / "main.py", run="python main.py", check="python -c 'import helper'")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    left = {e for e in os.listdir(tempfile.gettempdir()) if e.startswith(scratch.PREFIX)}
    script = "import os\nfrom helper import add\nopen('out.txt', 'w').write('x')\nprint(add(2), os.getcwd())\n"
    result = run_script(script, RunnerConfig(sandbox="none"), spec=spec)
    assert result.ok, result.log()
    assert result.stdout.startswith("3 ") and str(root) not in result.stdout
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert {e for e in os.listdir(tempfile.gettempdir()) if e.startswith(scratch.PREFIX)} == left
