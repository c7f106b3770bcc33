"""The reviewer's structural check: the cheats small models try first, seen in the script itself.

A proposal can "pass" the way a weak model makes a script run: delete or rewrite the checks the
script carries (its `assert` lines, its `test_*`/`check_*` functions), or delete the body and leave
a script that runs because it does nothing. The hidden checks already fail most of these; this
check names the cheat, so the reviewer's feedback says what was done instead of a failing value.

One function, `find_cheat(before, after)`, with no knowledge of tasks or the engine, so that it can
be folded together with the session's own cheat guard.
"""

from __future__ import annotations

import ast
from collections import Counter

# A proposal that keeps less than this share of the starting script's statements has lost its body
# (a refactor that shortens code keeps far more; a script emptied down to a print does not).
MIN_KEPT_SHARE = 0.4
_TEST_PREFIXES = ("test_", "check_")


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _asserts(tree: ast.AST) -> Counter:
    return Counter(ast.dump(node) for node in ast.walk(tree) if isinstance(node, ast.Assert))


def _functions(tree: ast.AST) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {node.name: node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _is_test(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A `test_*`/`check_*` function that asserts something: a check. A `check_score(value)` that
    validates its input is the script's own code, which a task may ask to change."""
    return fn.name.startswith(_TEST_PREFIXES) and any(isinstance(node, ast.Assert) for node in ast.walk(fn))


def _statements(tree: ast.AST) -> int:
    return sum(isinstance(node, ast.stmt) for node in ast.walk(tree))


def _is_empty_body(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """`pass`, `...`, a docstring, `return`/`return None`, or `raise NotImplementedError` only."""
    for stmt in fn.body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or `...`
        if isinstance(stmt, ast.Return) and (stmt.value is None or
                                             (isinstance(stmt.value, ast.Constant) and stmt.value.value is None)):
            continue
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.dump(stmt):
            continue
        return False
    return True


def find_cheat(before: str, after: str) -> str | None:
    """What the proposal `after` did to dodge the work on `before`, in a user's words; None if nothing.

    - an `assert` of the starting script is gone or changed, or a `test_*`/`check_*` function of it
      was removed or rewritten: "the checks in the script were deleted or rewritten";
    - a function that did something now does nothing (`pass`, `...`, `return None`);
    - most of the script is gone (less than MIN_KEPT_SHARE of its statements kept).
    """
    old, new = _parse(before), _parse(after)
    if old is None or new is None:
        return None  # a script that does not parse fails its run and its checks anyway
    missing = _asserts(old) - _asserts(new)
    if missing:
        return f"you deleted or changed {sum(missing.values())} of the script's assert checks; keep them as they are"
    old_fns, new_fns = _functions(old), _functions(new)
    for name, fn in old_fns.items():
        if _is_test(fn):
            if name not in new_fns:
                return f"you deleted the test function {name}(); the script's own tests must stay"
            if ast.dump(new_fns[name]) != ast.dump(fn):
                return f"you rewrote the test function {name}(); the script's own tests must stay as they are"
    for name, fn in new_fns.items():
        if name in old_fns and not _is_empty_body(old_fns[name]) and _is_empty_body(fn):
            return f"the body of {name}() was deleted, so it does nothing any more"
    if _statements(old) >= 3 and _statements(new) < MIN_KEPT_SHARE * _statements(old):
        return "most of the script was deleted; it runs only because it hardly does anything"
    return None
