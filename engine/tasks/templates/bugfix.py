"""Fix a bug: off-by-one, wrong operator, inverted test, shared mutable default, a crash."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill
from engine.tasks.templates.words import ITEMS

CATEGORY = "fix_bug"


def off_by_one(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("sum_to", "total_upto", "add_up_to", "triangle"))
    n = rng.randint(5, 30)
    body = '''
        def $fname(n):
            """The sum of the whole numbers from 1 to n."""
            total = 0
            for i in range(1, $stop):
                total += i
            return total


        print($fname($n))
    '''
    script = fill(body, fname=fname, n=n, stop="n")
    request = rng.choice((
        f"{fname}({n}) gives the wrong answer: it leaves out {n} itself. Fix it.",
        f"{fname} is off by one, the last number is never added. Please fix.",
    ))
    checks = fill('''
        def check_sums():
            m = load()
            for n in (1, 4, $n):
                expect(m.$fname(n), n * (n + 1) // 2, f"$fname({n})")

        def check_zero():
            expect(load().$fname(0), 0, "$fname(0)")
    ''', fname=fname, n=n)
    return TaskSpec(script, request, checks, fill(body, fname=fname, n=n, stop="n + 1"), "sums.py")


def wrong_operator(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("area", "rect_area", "surface", "box_area"))
    w, h = rng.randint(3, 9), rng.randint(3, 9)  # 2 + 2 == 2 * 2 would make the request meaningless
    body = '''
        def $fname(width, height):
            return width $op height


        print($fname($w, $h))
    '''
    script = fill(body, fname=fname, w=w, h=h, op="+")
    request = rng.choice((
        f"{fname} is wrong: it adds the sides instead of multiplying them.",
        f"The area comes out wrong. {fname}({w}, {h}) should be {w * h}.",
        f"fix {fname}, the area of a {w} by {h} rectangle is {w * h} not {w + h}",
    ))
    checks = fill('''
        def check_area():
            m = load()
            expect(m.$fname(3, 4), 12, "$fname(3, 4)")
            expect(m.$fname($w, $h), $wh, "$fname($w, $h)")
            expect(m.$fname(1, 7), 7, "$fname(1, 7)")
    ''', fname=fname, w=w, h=h, wh=w * h)
    return TaskSpec(script, request, checks, fill(body, fname=fname, w=w, h=h, op="*"), "shapes.py")


def inverted_condition(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("is_adult", "may_vote", "can_drive", "is_senior"))
    limit = rng.choice((16, 18, 21, 65))
    body = '''
        def $fname(age):
            return age $op $limit


        print($fname(30))
    '''
    script = fill(body, fname=fname, limit=limit, op="<")
    request = rng.choice((
        f"{fname} has it backwards: it should be True when the age is {limit} or more, False below {limit}.",
        f"{fname}({limit + 5}) says False, it should say True. True from {limit} on.",
    ))
    checks = fill('''
        def check_boundary():
            m = load()
            expect(m.$fname($limit), True, "$fname($limit)")
            expect(m.$fname($below), False, "$fname($below)")

        def check_far():
            m = load()
            expect(m.$fname($above), True, "$fname($above)")
            expect(m.$fname(1), False, "$fname(1)")
    ''', fname=fname, limit=limit, below=limit - 1, above=limit + 20)
    return TaskSpec(script, request, checks, fill(body, fname=fname, limit=limit, op=">="), "ages.py")


def mutable_default(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("add_item", "put_in_basket", "collect", "append_to"))
    item = rng.choice(ITEMS)
    script = fill('''
        def $fname(item, basket=[]):
            basket.append(item)
            return basket


        print($fname("$item"))
    ''', fname=fname, item=item)
    request = rng.choice((
        f"Calling {fname} twice without a basket keeps the items of the first call. "
        "Each call without a basket should start from an empty one.",
        f"bug: {fname}('a') then {fname}('b') returns ['a', 'b'] for the second call, it should be ['b']",
    ))
    checks = fill('''
        def check_fresh_basket():
            m = load()
            expect(m.$fname("a"), ["a"], '$fname("a")')
            expect(m.$fname("b"), ["b"], 'a second $fname("b")')

        def check_given_basket():
            expect(load().$fname("c", ["x"]), ["x", "c"], '$fname("c", ["x"])')
    ''', fname=fname)
    reference = fill('''
        def $fname(item, basket=None):
            if basket is None:
                basket = []
            basket.append(item)
            return basket


        print($fname("$item"))
    ''', fname=fname, item=item)
    return TaskSpec(script, request, checks, reference, "basket.py")


def concat_crash(rng: random.Random) -> TaskSpec:
    var = rng.choice(("count", "total", "score", "visitors"))
    label = rng.choice(("Count", "Total", "Score", "Visitors today"))
    n = rng.randint(3, 99)
    script = fill('''
        $var = $n
        print("$label: " + $var)
    ''', var=var, n=n, label=label)
    request = rng.choice((
        f"The script crashes with a TypeError. It should print `{label}: {n}`.",
        f"running this gives TypeError: can only concatenate str. I want it to print {label}: {n}",
    ))
    checks = fill('''
        def check_prints():
            r = run_main()
            assert r.code == 0, "the script still crashes: " + r.stderr.strip()[-200:]
            expect(r.lines, ["$label: $n"], "the printed lines")
    ''', label=label, n=n)
    reference = fill('''
        $var = $n
        print("$label: " + str($var))
    ''', var=var, n=n, label=label)
    return TaskSpec(script, request, checks, reference, "report.py")


def self_checked_average(rng: random.Random) -> TaskSpec:
    """The script carries its own check, which fails: the fix is in the function, not the check."""
    fname = rng.choice(("average", "mean", "mean_of", "avg"))
    a, b, c = rng.sample(range(2, 40), 3)
    body = '''
        def $fname(numbers):
            return sum(numbers) / $divisor


        assert $fname([2, 4]) == 3, "$fname([2, 4]) should be 3"
        print($fname([$a, $b, $c]))
    '''
    script = fill(body, fname=fname, a=a, b=b, c=c, divisor="(len(numbers) + 1)")
    request = rng.choice((
        f"The script stops with an AssertionError, {fname} is wrong. Fix {fname}, keep the check.",
        f"the assert at the bottom fails. {fname} should give the plain mean of the list; don't touch the assert.",
        f"Fix the bug in {fname} so that its check passes.",
    ))
    checks = fill('''
        def check_mean():
            m = load()
            expect(m.$fname([2, 4]), 3, "$fname([2, 4])")
            expect(m.$fname([$a, $b, $c]), ($a + $b + $c) / 3, "$fname([$a, $b, $c])")
            expect(m.$fname([5]), 5, "$fname([5])")

        def check_the_script_still_checks_itself():
            assert "assert $fname([2, 4]) == 3" in source(), "the script's own assert is gone or changed"
    ''', fname=fname, a=a, b=b, c=c)
    return TaskSpec(script, request, checks, fill(body, fname=fname, a=a, b=b, c=c, divisor="len(numbers)"), "stats.py")


def self_tested_percent(rng: random.Random) -> TaskSpec:
    """A test function in the script fails; the function under test has the bug."""
    fname = rng.choice(("percent", "as_percent", "share_pct", "percentage"))
    part, whole = rng.choice(((1, 8), (3, 5), (7, 20), (9, 10), (1, 5)))
    body = '''
        def $fname(part, whole):
            """part of whole in percent, rounded to a whole number."""
            return round(part / whole * $factor)


        def test_$fname():
            assert $fname(1, 4) == 25
            assert $fname(3, 3) == 100


        test_$fname()
        print($fname($part, $whole))
    '''
    script = fill(body, fname=fname, part=part, whole=whole, factor=10)
    request = rng.choice((
        f"test_{fname} fails. Fix {fname} itself, the test is right.",
        f"{fname}(1, 4) returns 2 instead of 25, so the test at the end crashes. Please fix the function.",
        f"The self-test fails. Make {fname} return percentages without changing test_{fname}.",
    ))
    checks = fill('''
        import ast

        def check_percent():
            m = load()
            expect(m.$fname(1, 4), 25, "$fname(1, 4)")
            expect(m.$fname($part, $whole), round($part / $whole * 100), "$fname($part, $whole)")

        def check_the_test_is_kept():
            fn = next((n for n in ast.walk(tree()) if isinstance(n, ast.FunctionDef) and n.name == "test_$fname"), None)
            assert fn is not None, "the test function test_$fname is gone"
            asserts = [ast.unparse(n) for n in ast.walk(fn) if isinstance(n, ast.Assert)]
            expect(asserts, ["assert $fname(1, 4) == 25", "assert $fname(3, 3) == 100"], "the asserts of test_$fname")
    ''', fname=fname, part=part, whole=whole)
    return TaskSpec(script, request, checks, fill(body, fname=fname, part=part, whole=whole, factor=100), "percent.py")


TEMPLATES = (
    Template("off_by_one", CATEGORY, TRAIN, off_by_one),
    Template("wrong_operator", CATEGORY, TRAIN, wrong_operator),
    Template("inverted_condition", CATEGORY, TRAIN, inverted_condition),
    Template("mutable_default", CATEGORY, HELD_OUT, mutable_default),
    Template("concat_crash", CATEGORY, HELD_OUT, concat_crash),
    Template("self_checked_average", CATEGORY, TRAIN, self_checked_average),
    Template("self_tested_percent", CATEGORY, HELD_OUT, self_tested_percent),
)
