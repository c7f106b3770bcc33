"""String formatting: decimals, aligned columns, title case, percentages, joined lists."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill
from engine.tasks.templates.words import ITEMS, TITLE_WORDS

CATEGORY = "string_formatting"


def two_decimals(rng: random.Random) -> TaskSpec:
    label = rng.choice(("Price", "Cost", "Total", "Amount"))
    price = rng.choice((3.5, 12.0, 0.5, 19.9, 42.1, 8.0))  # none printed with two decimals already
    script = fill('''
        price = $price
        print("$label:", price)
    ''', label=label, price=price)
    request = rng.choice((
        f"Print the {label.lower()} with exactly two decimals, like {label}: {price:.2f}",
        f"always show two digits after the point ({label}: {price:.2f}, not {label}: {price})",
    ))
    checks = fill('''
        def check_two_decimals():
            expect(run_main().lines, ["$label: $formatted"], "the printed line")
    ''', label=label, formatted=f"{price:.2f}")
    reference = fill('''
        price = $price
        print(f"$label: {price:.2f}")
    ''', label=label, price=price)
    return TaskSpec(script, request, checks, reference, "price.py")


def aligned_row(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("format_row", "row", "line_for", "table_row"))
    width = rng.choice((8, 10, 12, 15))
    script = fill('''
        def $fname(name, qty):
            return name + " " + str(qty)


        print($fname("pen", 3))
    ''', fname=fname)
    request = rng.choice((
        f"{fname} should put the name left-aligned in a {width}-character column, then the quantity "
        "right-aligned in a 5-character column.",
        f"make {fname} line up as a table: name padded to {width} characters on the left, qty right-aligned in 5 characters",
    ))
    checks = fill('''
        def check_columns():
            m = load()
            for name, qty in (("pen", 3), ("notebook", 120), ("a", 7)):
                expect(m.$fname(name, qty), f"{name:<$width}{qty:>5}", f"$fname({name!r}, {qty})")
    ''', fname=fname, width=width)
    reference = fill('''
        def $fname(name, qty):
            return f"{name:<$width}{qty:>5}"


        print($fname("pen", 3))
    ''', fname=fname, width=width)
    return TaskSpec(script, request, checks, reference, "table.py")


def title_case(rng: random.Random) -> TaskSpec:
    title = " ".join(rng.sample(TITLE_WORDS, 3))
    script = fill('''
        title = "$title"
        print(title)
    ''', title=title)
    request = rng.choice((
        "Print the title with every word capitalised.",
        f"the title should print as {title.title()}",
        "Capitalise the first letter of each word of the title when printing it.",
    ))
    checks = fill('''
        def check_title():
            expect(run_main().lines, ["$expected"], "the printed title")
    ''', expected=title.title())
    reference = fill('''
        title = "$title"
        print(title.title())
    ''', title=title)
    return TaskSpec(script, request, checks, reference, "title.py")


def percent(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("ratio", "share", "fraction", "portion"))
    script = fill('''
        def $fname(part, whole):
            return part / whole


        print($fname(1, 3))
    ''', fname=fname)
    request = rng.choice((
        f"{fname} should return a string: the percentage with one decimal and a % sign, like 33.3%.",
        f"Show {fname} as a percent string with 1 decimal: {fname}(1, 4) gives '25.0%'.",
    ))
    checks = fill('''
        def check_percent():
            m = load()
            expect(m.$fname(1, 3), "33.3%", "$fname(1, 3)")
            expect(m.$fname(1, 2), "50.0%", "$fname(1, 2)")
            expect(m.$fname(2, 2), "100.0%", "$fname(2, 2)")
    ''', fname=fname)
    reference = fill('''
        def $fname(part, whole):
            return f"{part / whole * 100:.1f}%"


        print($fname(1, 3))
    ''', fname=fname)
    return TaskSpec(script, request, checks, reference, "percent.py")


def join_items(rng: random.Random) -> TaskSpec:
    items = rng.sample(ITEMS, rng.randint(3, 5))
    sep = rng.choice((", ", " | ", " - "))
    script = fill('''
        items = $items

        for item in items:
            print(item)
    ''', items=repr(items))
    request = rng.choice((
        f"Print the items on one line, separated by {sep.strip()!r} with a space around it."
        if sep != ", " else "Print the items on one line, separated by a comma and a space.",
        f"one line please: {sep.join(items)}",
    ))
    checks = fill('''
        def check_one_line():
            expect(run_main().lines, [$joined], "the printed output")
    ''', joined=repr(sep.join(items)))
    reference = fill('''
        items = $items

        print($sep.join(items))
    ''', items=repr(items), sep=repr(sep))
    return TaskSpec(script, request, checks, reference, "items.py")


TEMPLATES = (
    Template("two_decimals", CATEGORY, TRAIN, two_decimals),
    Template("aligned_row", CATEGORY, TRAIN, aligned_row),
    Template("percent", CATEGORY, TRAIN, percent),
    Template("title_case", CATEGORY, HELD_OUT, title_case),
    Template("join_items", CATEGORY, HELD_OUT, join_items),
)
