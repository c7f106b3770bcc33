"""Add a feature: a new printed line, a new function, a new method, a new parameter."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill
from engine.tasks.templates.words import GREETINGS, ITEMS, PEOPLE, WORDS

CATEGORY = "add_feature"


def print_extra_line(rng: random.Random) -> TaskSpec:
    greeting, word = rng.choice(GREETINGS), rng.choice(WORDS)
    script = fill('''
        message = "$greeting"
        print(message)
    ''', greeting=greeting)
    request = rng.choice((
        f"Also print the word {word} on a second line.",
        f"After the message, print {word} on its own line.",
        f"can you make it print {word} too, on the next line",
    ))
    checks = fill('''
        def check_lines():
            r = run_main()
            assert r.code == 0, "the script should run without errors: " + r.stderr[-200:]
            expect(r.lines, [$greeting, $word], "the printed lines")
    ''', greeting=repr(greeting), word=repr(word))
    return TaskSpec(script, request, checks, script + f'print("{word}")\n', "message.py")


def print_total(rng: random.Random) -> TaskSpec:
    names = rng.sample(ITEMS, 3)
    prices = {n: rng.randint(2, 40) for n in names}
    label = rng.choice(("Total", "Sum", "Grand total"))
    script = fill('''
        prices = $prices

        for name, price in prices.items():
            print(f"{name}: {price}")
    ''', prices=repr(prices))
    request = rng.choice((
        f"At the end, also print the total of all the prices as `{label}: N`.",
        f"Add a last line with the sum of the prices, written like `{label}: 42`.",
    ))
    expected = [f"{n}: {p}" for n, p in prices.items()] + [f"{label}: {sum(prices.values())}"]
    checks = fill('''
        def check_total_line():
            r = run_main()
            assert r.code == 0, "the script should run without errors: " + r.stderr[-200:]
            expect(r.lines, $expected, "the printed lines")
    ''', expected=repr(expected))
    reference = script + f'print(f"{label}: {{sum(prices.values())}}")\n'
    return TaskSpec(script, request, checks, reference, "prices.py")


def largest_function(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("largest", "biggest", "max_value", "highest"))
    values = [rng.randint(1, 50) for _ in range(4)]
    body = '''
        def average(values):
            return sum(values) / len(values)

        $new
        if __name__ == "__main__":
            print(average($values))
    '''
    script = fill(body, values=repr(values), new="")
    request = rng.choice((
        f"Add a function {fname}(values) that returns the largest number in the list, or None when the list is empty.",
        f"I need a {fname}(values) function too: the biggest number of the list, and None for an empty list.",
    ))
    checks = fill('''
        def check_largest():
            m = load()
            assert hasattr(m, "$fname"), "there is no function $fname"
            expect(m.$fname([3, 9, 2]), 9, "$fname([3, 9, 2])")
            expect(m.$fname([-5, -2, -8]), -2, "$fname([-5, -2, -8])")

        def check_empty():
            m = load()
            assert hasattr(m, "$fname"), "there is no function $fname"
            expect(m.$fname([]), None, "$fname([])")

        def check_average_kept():
            expect(load().average([2, 4]), 3, "average([2, 4])")
    ''', fname=fname)
    new = f"\ndef {fname}(values):\n    if not values:\n        return None\n    return max(values)\n\n"
    return TaskSpec(script, request, checks, fill(body, values=repr(values), new=new), "stats.py")


def counter_reset(rng: random.Random) -> TaskSpec:
    cls = rng.choice(("Counter", "Tally", "ClickCounter", "Ticker"))
    inc = rng.choice(("increment", "add_one", "tick", "bump"))
    body = '''
        class $cls:
            def __init__(self):
                self.count = 0

            def $inc(self):
                self.count += 1
                return self.count
        $reset

        c = $cls()
        c.$inc()
        print(c.count)
    '''
    script = fill(body, cls=cls, inc=inc, reset="")
    request = rng.choice((
        f"Give {cls} a reset() method that sets the count back to zero.",
        f"{cls} needs a way to start over: add a reset() method that puts count back to 0.",
    ))
    checks = fill('''
        def check_reset():
            m = load()
            c = m.$cls()
            for _ in range(3):
                c.$inc()
            assert hasattr(c, "reset"), "$cls has no reset() method"
            c.reset()
            expect(c.count, 0, "the count after reset()")
            expect(c.$inc(), 1, "$inc() right after reset()")
    ''', cls=cls, inc=inc)
    reference = fill(body, cls=cls, inc=inc, reset="\n    def reset(self):\n        self.count = 0\n")
    return TaskSpec(script, request, checks, reference, "counter.py")


def optional_greeting(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("greet", "welcome", "say_hello", "salute"))
    person = rng.choice(PEOPLE).title()
    script = fill('''
        def $fname(name):
            return "Hello, " + name + "!"


        print($fname("$person"))
    ''', fname=fname, person=person)
    request = rng.choice((
        f"{fname} should take an optional greeting word, default Hello, used instead of the fixed Hello.",
        f"Let {fname} take a second, optional argument: the greeting to use (Hello when it is not given).",
    ))
    checks = fill('''
        def check_default():
            expect(load().$fname("Ann"), "Hello, Ann!", '$fname("Ann")')

        def check_custom():
            expect(load().$fname("Ann", "Hi"), "Hi, Ann!", '$fname("Ann", "Hi")')
            expect(load().$fname("Bo", "Good day"), "Good day, Bo!", '$fname("Bo", "Good day")')
    ''', fname=fname)
    reference = fill('''
        def $fname(name, greeting="Hello"):
            return greeting + ", " + name + "!"


        print($fname("$person"))
    ''', fname=fname, person=person)
    return TaskSpec(script, request, checks, reference, "greet.py")


TEMPLATES = (
    Template("print_extra_line", CATEGORY, TRAIN, print_extra_line),
    Template("print_total", CATEGORY, TRAIN, print_total),
    Template("largest_function", CATEGORY, TRAIN, largest_function),
    Template("counter_reset", CATEGORY, HELD_OUT, counter_reset),
    Template("optional_greeting", CATEGORY, HELD_OUT, optional_greeting),
)
