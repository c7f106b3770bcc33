"""Docstrings and type hints, with the behaviour checked as well (a docstring on an emptied
function is not the change the user asked for)."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill

CATEGORY = "docs_types"

_DOC = '''
def has_doc(obj, what):
    doc = (getattr(obj, "__doc__", None) or "").strip()
    assert doc, f"{what} has no docstring"
    assert len(doc.split()) >= 3, f"the docstring of {what} is too short to say anything: {doc!r}"
'''


def function_docstring(rng: random.Random) -> TaskSpec:
    fname, expr, doc = rng.choice((
        ("clamp", "max(lo, min(hi, x))", "Return x limited to the range lo..hi."),
        ("middle", "sorted([lo, x, hi])[1]", "Return the middle one of lo, x and hi."),
        ("detour", "abs(x - lo) + abs(hi - x)", "Return the distance from lo to x plus the distance from x to hi."),
    ))
    body = '''
        def $fname(x, lo, hi):
        $doc    return $expr


        print($fname(5, 1, 3))
    '''
    script = fill(body, fname=fname, expr=expr, doc="")
    request = rng.choice((
        f"Add a docstring to {fname} that says what it returns.",
        f"{fname} needs a docstring explaining its result.",
    ))
    samples = [(5, 1, 3), (0, 1, 3), (2, 1, 3)]
    expected = [eval(expr, {"x": x, "lo": lo, "hi": hi}) for x, lo, hi in samples]
    checks = _DOC + fill('''
        def check_docstring():
            has_doc(load().$fname, "$fname")

        def check_behaviour_kept():
            m = load()
            for args, want in zip($samples, $expected):
                expect(m.$fname(*args), want, f"$fname{args}")
    ''', fname=fname, samples=repr(samples), expected=repr(expected))
    reference = fill(body, fname=fname, expr=expr, doc=f'    """{doc}"""\n')
    return TaskSpec(script, request, checks, reference, "ranges.py")


def int_hints(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("combine", "mix", "weigh", "blend"))
    k = rng.randint(1, 9)
    body = '''
        def $fname(a$t, b$t)$r:
            return a * b + $k


        print($fname(2, 3))
    '''
    script = fill(body, fname=fname, k=k, t="", r="")
    request = rng.choice((
        f"Add type hints to {fname}: both arguments are ints and it returns an int.",
        f"annotate {fname} with types (int, int) -> int",
    ))
    checks = fill('''
        import typing

        def check_hints():
            expect(typing.get_type_hints(load().$fname), {"a": int, "b": int, "return": int}, "the type hints of $fname")

        def check_behaviour_kept():
            expect(load().$fname(4, 5), $v, "$fname(4, 5)")
    ''', fname=fname, v=4 * 5 + k)
    return TaskSpec(script, request, checks, fill(body, fname=fname, k=k, t=": int", r=" -> int"), "mix.py")


def module_docstring(rng: random.Random) -> TaskSpec:
    subject, code, expected = rng.choice((
        ("the squares of 1 to 3", "for i in range(1, 4):\n    print(i * i)\n", ["1", "4", "9"]),
        ("a countdown from 3", "for i in range(3, 0, -1):\n    print(i)\n", ["3", "2", "1"]),
        ("the letters of a word", 'for ch in "cat":\n    print(ch)\n', ["c", "a", "t"]),
        ("the even numbers below 7", "print([n for n in range(7) if n % 2 == 0])\n", ["[0, 2, 4, 6]"]),
    ))
    request = rng.choice((
        "Add a module docstring at the top that says what the script does.",
        "the file needs a docstring at the very top explaining what it is for",
    ))
    checks = _DOC + fill('''
        def check_module_docstring():
            has_doc(load(), "the script")

        def check_output_kept():
            r = run_main()
            assert r.code == 0, "the script should still run: " + r.stderr[-200:]
            expect(r.lines, $expected, "the printed lines")
    ''', expected=repr(expected))
    reference = f'"""Print {subject}."""\n\n' + code
    return TaskSpec(code, request, checks, reference, "show.py")


def list_hints(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("join_names", "roster", "name_line", "listing"))
    body = '''
        def $fname(names$n, sep$s)$r:
            return sep.join(sorted(names))


        print($fname(["bo", "al"], ", "))
    '''
    script = fill(body, fname=fname, n="", s="", r="")
    request = rng.choice((
        f"Annotate {fname}: names is a list of strings, sep is a string, and it returns a string.",
        f"add type hints to {fname} (names: list of str, sep: str, returns str)",
    ))
    checks = fill('''
        import typing

        def check_hints():
            hints = typing.get_type_hints(load().$fname)
            expect(hints, {"names": list[str], "sep": str, "return": str}, "the type hints of $fname")

        def check_behaviour_kept():
            expect(load().$fname(["c", "a", "b"], "-"), "a-b-c", '$fname(["c", "a", "b"], "-")')
    ''', fname=fname)
    reference = fill(body, fname=fname, n=": list[str]", s=": str", r=" -> str")
    return TaskSpec(script, request, checks, reference, "names.py")


def all_docstrings(rng: random.Random) -> TaskSpec:
    names = rng.choice((("load", "clean", "report"), ("fetch", "parse", "show"), ("start", "step", "stop")))
    body = '''
        def $a(items):
        $da    return list(items)


        def $b(items):
        $db    return [i.strip().lower() for i in items]


        def $c(items):
        $dc    return ", ".join(items)


        print($c($b($a([" A", "b "]))))
    '''
    script = fill(body, a=names[0], b=names[1], c=names[2], da="", db="", dc="")
    request = rng.choice((
        "Every function needs a docstring.",
        f"Please document {', '.join(names[:2])} and {names[2]} with docstrings.",
    ))
    checks = _DOC + fill('''
        def check_docstrings():
            m = load()
            for name in $names:
                assert callable(getattr(m, name, None)), f"the function {name} is gone"
                has_doc(getattr(m, name), name)

        def check_behaviour_kept():
            m = load()
            expect(m.$c(m.$b(m.$a([" X ", "y"]))), "x, y", "the three functions chained")
    ''', names=repr(list(names)), a=names[0], b=names[1], c=names[2])
    docs = {key: f'    """{text}"""\n' for key, text in (
        ("da", "Return the items as a list."), ("db", "Return the items stripped and lowercased."),
        ("dc", "Return the items joined with commas."))}
    reference = fill(body, a=names[0], b=names[1], c=names[2], **docs)
    return TaskSpec(script, request, checks, reference, "pipeline.py")


TEMPLATES = (
    Template("function_docstring", CATEGORY, TRAIN, function_docstring),
    Template("int_hints", CATEGORY, TRAIN, int_hints),
    Template("all_docstrings", CATEGORY, TRAIN, all_docstrings),
    Template("module_docstring", CATEGORY, HELD_OUT, module_docstring),
    Template("list_hints", CATEGORY, HELD_OUT, list_hints),
)
