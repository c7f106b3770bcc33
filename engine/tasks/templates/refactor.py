"""Refactor without changing behaviour: the checks hold the old behaviour and the new structure.

A refactor's start already behaves right, so each task also checks the structure it asks for (a
function that is used, a name that is gone, a comprehension, a constant that really is read, a
`main()` behind a guard); that part fails on the start.
"""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill

CATEGORY = "refactor"


def extract_function(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("with_tax", "add_tax", "gross_price", "price_with_vat"))
    rate = rng.choice((0.05, 0.1, 0.2, 0.25))
    prices = [round(rng.uniform(1, 60), 2) for _ in range(3)]
    script = fill('''
        a = $a
        b = $b
        c = $c
        print(round(a * (1 + $rate), 2))
        print(round(b * (1 + $rate), 2))
        print(round(c * (1 + $rate), 2))
    ''', a=prices[0], b=prices[1], c=prices[2], rate=rate)
    expected = [str(round(p * (1 + rate), 2)) for p in prices]
    request = rng.choice((
        f"The tax calculation is written three times. Move it into a function {fname}(price) that returns "
        "the price with tax, and use it for all three prints. The output must stay the same.",
        f"refactor: put the repeated tax formula in one function called {fname}(price) and call it three times; "
        "same output as now please",
    ))
    checks = fill('''
        import ast

        def check_output_unchanged():
            r = run_main()
            assert r.code == 0, "the script should run without errors: " + r.stderr[-200:]
            expect(r.lines, $expected, "the printed lines")

        def check_function():
            m = load()
            assert hasattr(m, "$fname"), "there is no function $fname"
            expect(m.$fname(10), round(10 * (1 + $rate), 2), "$fname(10)")

        def check_used():
            calls = [n for n in ast.walk(tree()) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id == "$fname"]
            assert len(calls) >= 3, f"the three prints should call $fname, but it is called {len(calls)} time(s)"
    ''', expected=repr(expected), fname=fname, rate=rate)
    reference = fill('''
        def $fname(price):
            return round(price * (1 + $rate), 2)


        a = $a
        b = $b
        c = $c
        print($fname(a))
        print($fname(b))
        print($fname(c))
    ''', fname=fname, a=prices[0], b=prices[1], c=prices[2], rate=rate)
    return TaskSpec(script, request, checks, reference, "tax.py")


def rename_function(rng: random.Random) -> TaskSpec:
    old, new = rng.choice((("calc", "score"), ("f", "weighted_sum"), ("do_it", "combine"), ("tmp", "mix")))
    k = rng.randint(1, 9)
    body = '''
        def $name(a, b):
            return a * b + $k


        print($name(2, 3))
        print($name(4, 5))
    '''
    script = fill(body, name=old, k=k)
    request = rng.choice((
        f"Rename {old} to {new} everywhere; the output must not change.",
        f"{old} is a bad name. Call the function {new} instead (and update the calls).",
    ))
    checks = fill('''
        def check_renamed():
            m = load()
            assert hasattr(m, "$new"), "there is no function $new"
            assert not hasattr(m, "$old"), "the old name $old is still there"
            expect(m.$new(2, 3), $v1, "$new(2, 3)")

        def check_output_unchanged():
            expect(run_main().lines, ["$v1", "$v2"], "the printed lines")
    ''', new=new, old=old, v1=2 * 3 + k, v2=4 * 5 + k)
    return TaskSpec(script, request, checks, fill(body, name=new, k=k), "calc.py")


def comprehension(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("scaled_big", "pick_and_scale", "big_ones_times", "filtered_scaled"))
    threshold, factor = rng.randint(2, 9), rng.randint(2, 5)
    script = fill('''
        def $fname(values):
            result = []
            for v in values:
                if v > $t:
                    result.append(v * $f)
            return result


        print($fname([1, 5, 10, 3]))
    ''', fname=fname, t=threshold, f=factor)
    request = rng.choice((
        f"Rewrite {fname} as a list comprehension; it must return the same results.",
        f"Could {fname} be a one-line list comprehension instead of the loop? Same behaviour.",
    ))
    samples = [[1, 5, 10, 3], [], [threshold, threshold + 1], list(range(12))]
    expected = [[v * factor for v in s if v > threshold] for s in samples]
    checks = fill('''
        import ast

        def check_same_results():
            m = load()
            for values, want in zip($samples, $expected):
                expect(m.$fname(values), want, f"$fname({values})")

        def check_comprehension():
            fn = next((n for n in ast.walk(tree()) if isinstance(n, ast.FunctionDef) and n.name == "$fname"), None)
            assert fn is not None, "there is no function $fname"
            nodes = list(ast.walk(fn))
            assert any(isinstance(n, ast.ListComp) for n in nodes), "$fname does not use a list comprehension"
            assert not any(isinstance(n, ast.For) for n in nodes), "$fname still has a for loop"
    ''', samples=repr(samples), expected=repr(expected), fname=fname)
    reference = fill('''
        def $fname(values):
            return [v * $f for v in values if v > $t]


        print($fname([1, 5, 10, 3]))
    ''', fname=fname, t=threshold, f=factor)
    return TaskSpec(script, request, checks, reference, "scale.py")


def named_constant(rng: random.Random) -> TaskSpec:
    const = rng.choice(("DISCOUNT_RATE", "DISCOUNT", "SALE_RATE", "REDUCTION"))
    one, many = rng.choice((("discounted", "discounted_all"), ("sale_price", "sale_prices"), ("reduce", "reduce_all")))
    rate = rng.choice((0.1, 0.15, 0.2, 0.3))
    script = fill('''
        def $one(price):
            return price - price * $rate


        def $many(prices):
            return [p - p * $rate for p in prices]


        print($one(100))
    ''', one=one, many=many, rate=rate)
    request = rng.choice((
        f"The discount rate {rate} is written twice. Put it in one module-level constant named {const} "
        "and use that in both functions.",
        f"Make the {rate} a constant {const} at the top of the file, used by {one} and {many}.",
    ))
    checks = fill('''
        def check_constant():
            expect(getattr(load(), "$const", None), $rate, "the constant $const")

        def check_same_results():
            m = load()
            expect(m.$one(100), 100 - 100 * $rate, "$one(100)")
            expect(m.$many([10, 20]), [10 - 10 * $rate, 20 - 20 * $rate], "$many([10, 20])")

        def check_constant_is_used():
            m = load()
            m.$const = 0.5
            expect(m.$one(100), 50.0, "$one(100) once $const is changed to 0.5")
            expect(m.$many([10]), [5.0], "$many([10]) once $const is changed to 0.5")
    ''', const=const, rate=rate, one=one, many=many)
    reference = fill('''
        $const = $rate


        def $one(price):
            return price - price * $const


        def $many(prices):
            return [p - p * $const for p in prices]


        print($one(100))
    ''', const=const, rate=rate, one=one, many=many)
    return TaskSpec(script, request, checks, reference, "discount.py")


def main_guard(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("square", "cube", "double", "triple"))
    power = {"square": "n * n", "cube": "n * n * n", "double": "n * 2", "triple": "n * 3"}[fname]
    n = rng.randint(3, 6)
    script = fill('''
        def $fname(n):
            return $power


        for i in range($n):
            print($fname(i))
    ''', fname=fname, power=power, n=n)
    request = rng.choice((
        'Importing this script prints things. Move the loop into a main() function and call it only under '
        'if __name__ == "__main__".',
        "put the top-level loop in a main() function behind the usual __main__ guard so I can import the module",
    ))
    expected = [str(eval(power, {"n": i})) for i in range(n)]
    checks = fill('''
        def check_quiet_import():
            m = load()
            expect(m.__output__, "", "what importing the script prints")

        def check_main():
            m = load()
            assert callable(getattr(m, "main", None)), "there is no main() function"

        def check_output_unchanged():
            expect(run_main().lines, $expected, "the printed lines when run as a script")
    ''', expected=repr(expected))
    reference = fill('''
        def $fname(n):
            return $power


        def main():
            for i in range($n):
                print($fname(i))


        if __name__ == "__main__":
            main()
    ''', fname=fname, power=power, n=n)
    return TaskSpec(script, request, checks, reference, "table.py")


TEMPLATES = (
    Template("extract_function", CATEGORY, TRAIN, extract_function),
    Template("rename_function", CATEGORY, TRAIN, rename_function),
    Template("main_guard", CATEGORY, TRAIN, main_guard),
    Template("comprehension", CATEGORY, HELD_OUT, comprehension),
    Template("named_constant", CATEGORY, HELD_OUT, named_constant),
)
