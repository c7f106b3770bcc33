"""Hidden checks: run a task's checks against a proposed script, in the real sandbox.

The engine never sees a task's checks. They run here, after the fact, in a separate program (the
harness) that `engine.execution.run_script` runs like any generated script: same sandbox, same limits.
The harness writes the proposed script next to itself as `candidate.py` and the checks reach it
only through these helpers:

- `load()` imports the candidate as a module named `candidate` (so its `if __name__ == "__main__"`
  block does not run), with its output captured; a fresh import on every call;
- `run_main(*argv, stdin="")` runs it as `__main__` with that argv and stdin and returns a `Ran`
  (stdout, stderr, exit code), catching `SystemExit` as a real run would end;
- `source()` and `tree()` give its text and its AST, for checks on structure (refactors);
- `expect(actual, expected, what)` asserts with a message in the user's words.

Each `check_*` function of the checks runs in order, under its own time limit; an `AssertionError`
is a failure with its message (the reviewer tells the user's side of it), any other exception is a
failure naming it.

Why a nonce: a proposal must not pass by printing "ok" or exiting 0. The harness prints its result
as one line that starts with a random token chosen here for this run, and the result counts only if
that line is there. The token lies in the harness's source, which the harness deletes from the run
directory before the candidate runs; a script written to dig it out of the interpreter could still
find it, but the model never sees the harness or its checks, and the cheats small models try
(printing success, deleting checks, exiting early, `os._exit`) all fail here.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass

from engine.config import RunnerConfig
from engine.execution import RunResult, run_script

CHECK_TIME_LIMIT_S = 3  # per check function; the runner's wall clock bounds the whole run

_HARNESS = r'''
import ast, contextlib, importlib.util, io, json, os, runpy, signal, sys, traceback

_NONCE = __NONCE__
_CANDIDATE = __CANDIDATE__
_CHECKS = __CHECKS__
_LIMIT = __LIMIT__
_MESSAGE_LIMIT = 1000  # characters of one failure message (a repr of what a script printed can be huge)
_OUT = os.dup(1)  # the candidate may close or replace sys.stdout; the result goes here
sys.dont_write_bytecode = True  # `python -I` ignores PYTHONDONTWRITEBYTECODE; no __pycache__ beside the candidate
try:
    os.remove(os.path.abspath(__file__))  # the nonce is in this file
except OSError:
    pass
_PATH = os.path.abspath("candidate.py")
with open(_PATH, "w", encoding="utf-8") as _f:
    _f.write(_CANDIDATE)


class Ran:
    def __init__(self, stdout, stderr, code):
        self.stdout, self.stderr, self.code = stdout, stderr, code

    @property
    def lines(self):
        return [line.rstrip() for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self):
        return f"Ran(code={self.code!r}, stdout={self.stdout!r}, stderr={self.stderr[-300:]!r})"


def _short(err):
    text = f"{type(err).__name__}: {err}".strip()
    return text if len(text) < 300 else text[:300] + "..."


def load():
    """The candidate imported as a module (its __main__ block does not run)."""
    spec = importlib.util.spec_from_file_location("candidate", _PATH)
    module = importlib.util.module_from_spec(spec)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            spec.loader.exec_module(module)
    except SystemExit as exc:
        raise AssertionError(f"the script exits when it is imported (exit code {exc.code!r})") from None
    except _Timeout:
        raise
    except BaseException as exc:
        raise AssertionError(f"importing the script raised {_short(exc)}") from None
    module.__output__ = out.getvalue()
    return module


def run_main(*argv, stdin=""):
    """Run the candidate as `python script.py ARGV...` would, in this process."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdin
    sys.argv, sys.stdin = ["script.py", *[str(a) for a in argv]], io.StringIO(stdin)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(_PATH, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            err.write(str(exc.code) + "\n")
    except _Timeout:
        raise
    except BaseException:
        code = 1
        err.write(traceback.format_exc())
    finally:
        sys.argv, sys.stdin = saved
    return Ran(out.getvalue(), err.getvalue(), code)


def source():
    with open(_PATH, encoding="utf-8") as f:
        return f.read()


def tree():
    return ast.parse(source())


def expect(actual, expected, what):
    assert actual == expected, f"{what} should be {expected!r}, but it is {actual!r}"


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _main():
    namespace = {"load": load, "run_main": run_main, "source": source, "tree": tree, "expect": expect,
                 "Ran": Ran, "__name__": "hidden_checks"}
    exec(compile(_CHECKS, "hidden_checks.py", "exec"), namespace)
    results = []
    for name, fn in list(namespace.items()):
        if not (name.startswith("check_") and callable(fn)):
            continue
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(_LIMIT)
        try:
            fn()
            results.append([name, True, ""])
        except _Timeout:
            results.append([name, False, f"it did not finish within {_LIMIT} seconds (an endless loop?)"])
        except AssertionError as exc:
            results.append([name, False, str(exc) or (fn.__doc__ or name).strip()])
        except BaseException as exc:
            results.append([name, False, f"{(fn.__doc__ or name).strip()}: {_short(exc)}"])
        finally:
            signal.alarm(0)
    for result in results:  # the report must fit the run's output cap, whatever the script printed
        if len(result[2]) > _MESSAGE_LIMIT:
            result[2] = result[2][:_MESSAGE_LIMIT] + " [... cut]"
    os.write(_OUT, ("\n" + _NONCE + json.dumps(results) + "\n").encode("utf-8"))


_main()
'''


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    message: str  # why it failed, worded for the user; "" when it passed


@dataclass(frozen=True)
class CheckReport:
    """What the hidden checks found. `problem` is set when the checks could not report at all."""

    results: tuple[CheckResult, ...]
    problem: str | None
    run: RunResult

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.results) and all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def n_passed(self) -> int:
        return sum(r.passed for r in self.results)


def harness_source(checks: str, script: str, nonce: str) -> str:
    """The program that runs `checks` against `script` (exposed for tests and for reading)."""
    return (_HARNESS.replace("__NONCE__", json.dumps(nonce))
            .replace("__CANDIDATE__", json.dumps(script))
            .replace("__CHECKS__", json.dumps(checks))
            .replace("__LIMIT__", str(CHECK_TIME_LIMIT_S)))


def _parse_report(payload: str) -> tuple[CheckResult, ...] | None:
    """The harness's result line as CheckResults; None when it is not whole (the output cap cut it)."""
    try:
        return tuple(CheckResult(str(name), bool(ok), str(message)) for name, ok, message in json.loads(payload))
    except (ValueError, TypeError):
        return None


def run_checks(checks: str, script: str, config: RunnerConfig | None = None, *,
               cancel: threading.Event | None = None) -> CheckReport:
    """Run the hidden `checks` against `script` in the sandbox and read back the nonce line."""
    nonce = "SHAKE-CHECKS-" + secrets.token_hex(16) + " "
    run = run_script(harness_source(checks, script, nonce), config or RunnerConfig(), cancel=cancel)
    payload = None
    for line in run.stdout.splitlines():
        if line.startswith(nonce):
            payload = line[len(nonce):]
    results = _parse_report(payload) if payload is not None else None
    if results is None:
        if run.stdout_truncated:  # the report line came after the output cap
            problem = ("the script printed more than a run keeps (the runner's output cap), so the checks' "
                       "report was cut off")
        elif payload is not None:
            problem = "the checks' report could not be read (it was cut off)"
        elif run.timed_out:
            problem = "the checks did not finish in time (the script may loop forever)"
        else:
            problem = f"the checks did not finish (exit code {run.exit_code}): the script ended the process"
            tail = run.stderr.strip().splitlines()[-1:] if run.stderr.strip() else []
            if tail:
                problem += f" ({tail[0][:200]})"
        return CheckReport((), problem, run)
    if not results:
        return CheckReport((), "the task has no checks", run)
    return CheckReport(results, None, run)
