"""The cheat guard: does a proposal delete most of the script's functions, or its checks, unasked?

Small workers find that a script "runs cleanly" most easily by deleting what fails: the function
they could not write, or the asserts at the bottom that test it. Such a proposal runs, and a user
who only glances at the run log accepts it. This pure function compares the script before and
after and flags that shape, unless the request asked for a removal; the review shows the finding
(the proposal event's `cheat` data) and the automatic reviewer counts it.

What counts:
- functions: every `def` at module level and in classes (not nested in other functions), by
  qualified name. One renamed with the same body is kept, not removed; one whose body became a
  stub (`pass`, `...`, `return None`, `raise NotImplementedError`) is removed in all but name.
- checks: `assert` statements, `self.assert*(...)` calls, and the bodies of `test_*` / `check_*`
  functions.
Flagged: more than half of the functions removed, or more than half of the checks, when the
request has no word of removal (remove, delete, drop, rename, inline, merge...). A script that
does not parse is not judged here: it fails when it runs.
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, field

MOST = 0.5  # "most": strictly more than this share
_REMOVAL_WORDS = re.compile(
    r"\b(remov\w*|delet\w*|drop\w*|get rid|rid of|strip\w*|eliminat\w*|take out|cut|clean\w* up|"
    r"renam\w*|inlin\w*|merg\w*|combin\w*|consolidat\w*|replac\w*|rewrit\w*|no longer|don'?t need|"
    r"do not need|unused|dead code|simplif\w*)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CheatReport:
    flagged: bool
    reason: str  # one sentence for the review; "" when not flagged
    functions_before: int = 0
    functions_removed: list[str] = field(default_factory=list)
    checks_before: int = 0
    checks_after: int = 0
    removal_asked: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _is_stub(body: list[ast.stmt]) -> bool:
    stmts = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                     and isinstance(s.value.value, str))]  # a docstring is not code
    if not stmts:
        return True
    if len(stmts) != 1:
        return False
    only = stmts[0]
    if isinstance(only, ast.Pass):
        return True
    if isinstance(only, ast.Expr) and isinstance(only.value, ast.Constant) and only.value.value is Ellipsis:
        return True
    if isinstance(only, ast.Return) and (only.value is None or (isinstance(only.value, ast.Constant)
                                                                and only.value.value is None)):
        return True
    if isinstance(only, ast.Raise) and only.exc is not None:
        target = only.exc.func if isinstance(only.exc, ast.Call) else only.exc
        return isinstance(target, ast.Name) and target.id == "NotImplementedError"
    return False


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def visit(nodes: list[ast.stmt], prefix: str) -> None:
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[prefix + node.name] = node
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                # definitions under `if __name__ == "__main__":` or a try/except import guard
                for part in ("body", "orelse", "finalbody"):
                    visit(getattr(node, part, []) or [], prefix)
                for handler in getattr(node, "handlers", []) or []:
                    visit(handler.body, prefix)

    visit(tree.body, "")
    return found


def _checks(tree: ast.Module) -> int:
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            count += 1
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr.startswith("assert")):
            count += 1
    for name, fn in _functions(tree).items():
        short = name.rsplit(".", 1)[-1]
        if short.startswith(("test_", "check_")) and not _is_stub(fn.body):
            count += 1
    return count


def _body_key(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return ast.dump(ast.Module(body=fn.body, type_ignores=[]))


def check_proposal(before: str, after: str, request: str) -> CheatReport:
    """Compare the current script with the proposed one; `request` is what the user asked for."""
    try:
        old, new = ast.parse(before), ast.parse(after)
    except (SyntaxError, ValueError):
        return CheatReport(False, "")
    old_fns, new_fns = _functions(old), _functions(new)
    new_bodies = {_body_key(fn) for fn in new_fns.values()}
    removed = []
    for name, fn in old_fns.items():
        kept = new_fns.get(name)
        if kept is None:
            if _body_key(fn) not in new_bodies:  # not merely renamed
                removed.append(name)
        elif _is_stub(kept.body) and not _is_stub(fn.body):
            removed.append(f"{name} (emptied)")
    checks_before, checks_after = _checks(old), _checks(new)
    asked = bool(_REMOVAL_WORDS.search(request))
    reasons = []
    if old_fns and len(removed) / len(old_fns) > MOST:
        reasons.append(f"it removes {len(removed)} of the script's {len(old_fns)} functions ({', '.join(removed[:4])})")
    if checks_before and (checks_before - checks_after) / checks_before > MOST:
        reasons.append(f"it removes {checks_before - checks_after} of the script's {checks_before} checks")
    flagged = bool(reasons) and not asked
    reason = ("The proposal may cheat: " + " and ".join(reasons) + ", and the request did not ask for that."
              if flagged else "")
    return CheatReport(flagged, reason, len(old_fns), removed, checks_before, checks_after, asked)


# -- proposals that never reach the user ------------------------------------------------------
# A request that is about comments or layout: there, a change a parser cannot see is the change.
_LAYOUT_WORDS = re.compile(r"\b(comment\w*|format\w*|indent\w*|whitespace|spacing|blank line\w*|pep ?8|style|"
                           r"quote\w*|line length|wrap\w*|reformat\w*|tidy)\b", re.IGNORECASE)


def _code_lines(source: str) -> list[str]:
    """The lines of `source` without blank lines and trailing spaces (what a layout request may change)."""
    return [line.rstrip() for line in source.replace("\r\n", "\n").split("\n") if line.strip()]


def _statement_count(tree: ast.AST) -> int:
    """Statements that do something: docstrings, `pass` and `...` lines are not counted."""
    count = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or isinstance(node, ast.Pass):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        count += 1
    return count


LOST_BODY_SHARE = 0.4  # a proposal keeping less than this share of the statements has lost the script's body


def proposal_problem(before: str, after: str, request: str) -> str | None:
    """Why the proposal `after` must not reach the user as a proposal, in words the lead can act on;
    None when it may.

    A proposal that runs is not yet a change: small workers answer with the script unchanged (only
    blank lines or comments differ), with every statement replaced by comments, or with the failing
    function deleted, and each of those "runs cleanly". The engine treats such a proposal like a failed
    run (a rejected row with this reason as its error, and the reason back to the lead), so the user
    reviews changes, never the script they already have (issue #26).

    - no change: the same program (same syntax tree) as `before`; for a request about comments or
      layout the same lines, ignoring blank ones;
    - nothing left: no statement that does anything, where `before` had some;
    - most of the script gone (less than LOST_BODY_SHARE of its statements), most functions or checks
      removed, or a function emptied, when the request asked for no removal (`check_proposal`).
    A script that does not parse is not judged here: it fails when it runs.
    """
    try:
        old, new = ast.parse(before), ast.parse(after)
    except (SyntaxError, ValueError):
        return None
    layout = bool(_LAYOUT_WORDS.search(request))
    if (_code_lines(before) == _code_lines(after)) if layout else (ast.dump(old) == ast.dump(new)):
        what = "only blank lines differ" if layout else "only blank lines, comments or layout differ"
        return f"the proposal does not change the script ({what}); it must make the change that was asked for"
    kept, had = _statement_count(new), _statement_count(old)
    if had and not kept:
        return "the proposal removes every statement of the script; it must keep the script and change it"
    if _REMOVAL_WORDS.search(request):
        return None
    report = check_proposal(before, after, request)
    if report.flagged:
        return report.reason.replace("The proposal may cheat: it", "the proposal").rstrip(".") + "; keep them"
    if had >= 3 and kept < LOST_BODY_SHARE * had:
        return (f"the proposal keeps only {kept} of the script's {had} statements; it must keep what the request "
                "does not ask to change")
    emptied = [name for name in report.functions_removed if name.endswith("(emptied)")]
    if emptied:
        return f"the proposal empties {emptied[0].removesuffix(' (emptied)')}(); it must keep the function working"
    return None
