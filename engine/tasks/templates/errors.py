"""Error handling: a zero divisor, bad text, a missing file, an out-of-range value, a missing key."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill
from engine.tasks.templates.words import ITEMS

CATEGORY = "error_handling"


def safe_divide(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("divide", "safe_div", "per_item", "split_evenly"))
    a, b = rng.randint(2, 9) * 6, 6
    script = fill('''
        def $fname(a, b):
            return a / b


        print($fname($a, $b))
    ''', fname=fname, a=a, b=b)
    request = rng.choice((
        f"{fname} crashes when b is zero. Return None in that case instead.",
        f"make {fname}(5, 0) give None rather than raising ZeroDivisionError",
    ))
    checks = fill('''
        def check_zero():
            expect(load().$fname(5, 0), None, "$fname(5, 0)")

        def check_normal():
            m = load()
            expect(m.$fname(6, 3), 2, "$fname(6, 3)")
            expect(m.$fname($a, $b), $q, "$fname($a, $b)")
    ''', fname=fname, a=a, b=b, q=a // b)
    reference = fill('''
        def $fname(a, b):
            if b == 0:
                return None
            return a / b


        print($fname($a, $b))
    ''', fname=fname, a=a, b=b)
    return TaskSpec(script, request, checks, reference, "divide.py")


def parse_number(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("parse_age", "to_int", "read_count", "parse_quantity"))
    default = rng.choice((-1, 0, None))
    script = fill('''
        def $fname(text):
            return int(text)


        print($fname("42"))
    ''', fname=fname)
    request = rng.choice((
        f"{fname} should return {default} when the text is not a whole number, instead of raising an error.",
        f"if the input isn't a number, {fname} must give back {default} (now it crashes with ValueError)",
    ))
    checks = fill('''
        def check_number():
            m = load()
            expect(m.$fname("42"), 42, '$fname("42")')
            expect(m.$fname("-7"), -7, '$fname("-7")')

        def check_not_a_number():
            m = load()
            for text in ("abc", "", "4.5x"):
                expect(m.$fname(text), $default, f"$fname({text!r})")
    ''', fname=fname, default=default)
    reference = fill('''
        def $fname(text):
            try:
                return int(text)
            except ValueError:
                return $default


        print($fname("42"))
    ''', fname=fname, default=default)
    return TaskSpec(script, request, checks, reference, "parse.py")


def missing_file(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("read_config", "load_options", "read_settings", "load_state"))
    script = fill('''
        import json


        def $fname(path):
            with open(path) as f:
                return json.load(f)
    ''', fname=fname)
    request = rng.choice((
        f"{fname} should return an empty dict when the file does not exist.",
        f"When there's no such file, {fname} crashes with FileNotFoundError. Give back {{}} instead.",
    ))
    checks = fill('''
        def check_missing():
            expect(load().$fname("no-such-file.json"), {}, '$fname("no-such-file.json")')

        def check_present():
            with open("present.json", "w") as f:
                f.write('{"a": 1}')
            expect(load().$fname("present.json"), {"a": 1}, "$fname of a file holding {'a': 1}")
    ''', fname=fname)
    reference = fill('''
        import json


        def $fname(path):
            try:
                with open(path) as f:
                    return json.load(f)
            except FileNotFoundError:
                return {}
    ''', fname=fname)
    return TaskSpec(script, request, checks, reference, "config_reader.py")


def validate_range(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("set_percent", "check_score", "validate_level", "clamp_input"))
    lo, hi = rng.choice(((0, 100), (1, 10), (0, 5), (18, 99)))
    script = fill('''
        def $fname(value):
            return value


        print($fname($lo))
    ''', fname=fname, lo=lo)
    request = rng.choice((
        f"{fname} should raise ValueError when the value is below {lo} or above {hi}, and return it otherwise.",
        f"reject values outside {lo}..{hi} in {fname} with a ValueError (with a message); values inside come back unchanged",
    ))
    checks = fill('''
        def check_inside():
            m = load()
            for v in ($lo, $hi):
                expect(m.$fname(v), v, f"$fname({v})")

        def check_outside():
            m = load()
            for v in ($below, $above):
                try:
                    m.$fname(v)
                except ValueError:
                    continue
                raise AssertionError(f"$fname({v}) should raise ValueError, but it did not")
    ''', fname=fname, lo=lo, hi=hi, below=lo - 1, above=hi + 1)
    reference = fill('''
        def $fname(value):
            if value < $lo or value > $hi:
                raise ValueError(f"value must be between $lo and $hi, got {value}")
            return value


        print($fname($lo))
    ''', fname=fname, lo=lo, hi=hi)
    return TaskSpec(script, request, checks, reference, "validate.py")


def missing_key(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("price_of", "lookup", "cost", "find_price"))
    prices = {item: rng.randint(1, 9) for item in rng.sample(ITEMS, 3)}
    known = next(iter(prices))
    script = fill('''
        PRICES = $prices


        def $fname(prices, item):
            return prices[item]


        print($fname(PRICES, "$known"))
    ''', prices=repr(prices), fname=fname, known=known)
    request = rng.choice((
        f"{fname} should return 0 for items that are not in the dict instead of raising KeyError.",
        f"unknown items make {fname} crash; let it return 0 for them",
    ))
    checks = fill('''
        def check_unknown():
            expect(load().$fname({"a": 3}, "zzz"), 0, '$fname({"a": 3}, "zzz")')

        def check_known():
            m = load()
            expect(m.$fname({"a": 3}, "a"), 3, '$fname({"a": 3}, "a")')
            expect(m.$fname(m.PRICES, "$known"), $price, '$fname(PRICES, "$known")')
    ''', fname=fname, known=known, price=prices[known])
    reference = fill('''
        PRICES = $prices


        def $fname(prices, item):
            return prices.get(item, 0)


        print($fname(PRICES, "$known"))
    ''', prices=repr(prices), fname=fname, known=known)
    return TaskSpec(script, request, checks, reference, "shop.py")


TEMPLATES = (
    Template("safe_divide", CATEGORY, TRAIN, safe_divide),
    Template("parse_number", CATEGORY, TRAIN, parse_number),
    Template("missing_key", CATEGORY, TRAIN, missing_key),
    Template("missing_file", CATEGORY, HELD_OUT, missing_file),
    Template("validate_range", CATEGORY, HELD_OUT, validate_range),
)
