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


TEMPLATES = (
    Template("off_by_one", CATEGORY, TRAIN, off_by_one),
    Template("wrong_operator", CATEGORY, TRAIN, wrong_operator),
    Template("inverted_condition", CATEGORY, TRAIN, inverted_condition),
    Template("mutable_default", CATEGORY, HELD_OUT, mutable_default),
    Template("concat_crash", CATEGORY, HELD_OUT, concat_crash),
)
