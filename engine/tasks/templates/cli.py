"""Add command-line arguments: a positional name, an option with a default, a flag, an output file."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill
from engine.tasks.templates.words import COLOURS, GREETINGS, ITEMS, WORDS

CATEGORY = "cli_args"

_RAN = '''
def ran(*argv):
    r = run_main(*argv)
    shown = " ".join(argv) or "no arguments"
    assert r.code == 0, f"with {shown} the script failed: " + r.stderr.strip()[-200:]
    return r
'''


def argv_name(rng: random.Random) -> TaskSpec:
    greeting = rng.choice(GREETINGS).title()
    script = fill('''
        name = "world"
        print(f"$greeting, {name}!")
    ''', greeting=greeting)
    request = rng.choice((
        "Take the name from the first command-line argument, and keep world when none is given.",
        "I want to run it as `python script.py Ann` and get greeted by name; without an argument it greets world.",
    ))
    checks = _RAN + fill('''
        def check_name_argument():
            expect(ran("Ann").lines, ["$greeting, Ann!"], "the output of `script.py Ann`")
            expect(ran("Bo").lines, ["$greeting, Bo!"], "the output of `script.py Bo`")

        def check_default():
            expect(ran().lines, ["$greeting, world!"], "the output with no argument")
    ''', greeting=greeting)
    reference = fill('''
        import sys

        name = sys.argv[1] if len(sys.argv) > 1 else "world"
        print(f"$greeting, {name}!")
    ''', greeting=greeting)
    return TaskSpec(script, request, checks, reference, "hello.py")


def times_option(rng: random.Random) -> TaskSpec:
    word = rng.choice(WORDS)
    default = rng.choice((2, 3, 4))
    script = fill('''
        for _ in range($default):
            print("$word")
    ''', word=word, default=default)
    request = rng.choice((
        f"Add a --times option (a whole number, default {default}) that says how many times to print.",
        f"let me choose the number of lines with --times N on the command line; {default} if I leave it out",
    ))
    checks = _RAN + fill('''
        def check_times():
            expect(ran("--times", "1").lines, ["$word"], "the output of `--times 1`")
            expect(ran("--times", "5").lines, ["$word"] * 5, "the output of `--times 5`")

        def check_default():
            expect(ran().lines, ["$word"] * $default, "the output with no option")
    ''', word=word, default=default)
    reference = fill('''
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--times", type=int, default=$default)
        args = parser.parse_args()
        for _ in range(args.times):
            print("$word")
    ''', word=word, default=default)
    return TaskSpec(script, request, checks, reference, "repeat.py")


def upper_flag(rng: random.Random) -> TaskSpec:
    what = rng.choice(("message", "text", "line", "note"))
    script = fill('''
        import argparse

        parser = argparse.ArgumentParser(description="Print a $what.")
        parser.add_argument("$what")
        args = parser.parse_args()
        print(args.$what)
    ''', what=what)
    request = rng.choice((
        f"Add an --upper flag; with it the {what} is printed in capital letters.",
        f"I'd like an --upper switch that shouts: prints the {what} upper-cased. Without it, unchanged.",
    ))
    checks = _RAN + '''
def check_plain():
    expect(ran("hi there").lines, ["hi there"], "the output of `script.py 'hi there'`")

def check_upper():
    expect(ran("hi there", "--upper").lines, ["HI THERE"], "the output of `script.py 'hi there' --upper`")
    expect(ran("--upper", "Mixed Case").lines, ["MIXED CASE"], "the output of `script.py --upper 'Mixed Case'`")
'''
    reference = fill('''
        import argparse

        parser = argparse.ArgumentParser(description="Print a $what.")
        parser.add_argument("$what")
        parser.add_argument("--upper", action="store_true")
        args = parser.parse_args()
        print(args.$what.upper() if args.upper else args.$what)
    ''', what=what)
    return TaskSpec(script, request, checks, reference, "shout.py")


def sum_arguments(rng: random.Random) -> TaskSpec:
    a, b = rng.randint(20, 50), rng.randint(20, 50)  # far from the checked answers
    op, verb = rng.choice((("+", "sum"), ("*", "product")))
    script = fill('''
        a = $a
        b = $b
        print(a $op b)
    ''', a=a, b=b, op=op)
    request = rng.choice((
        f"Read the two numbers from the command line instead of fixing them in the script, and print their {verb}.",
        f"make it take a and b as command-line arguments (whole numbers) and print the {verb}",
    ))
    checks = _RAN + fill('''
        def check_arguments():
            expect(ran("2", "5").lines, [str(2 $op 5)], "the output of `script.py 2 5`")
            expect(ran("10", "-3").lines, [str(10 $op -3)], "the output of `script.py 10 -3`")
    ''', op=op)
    reference = fill('''
        import sys

        a = int(sys.argv[1])
        b = int(sys.argv[2])
        print(a $op b)
    ''', op=op)
    return TaskSpec(script, request, checks, reference, "calc.py")


def output_option(rng: random.Random) -> TaskSpec:
    lines = rng.sample(ITEMS, 2) + [rng.choice(COLOURS)]
    script = fill('''
        LINES = $lines

        for line in LINES:
            print(line)
    ''', lines=repr(lines))
    request = rng.choice((
        "Add an --output FILE option: when it is given, write the lines to that file instead of printing them; "
        "without it, print as now.",
        "I need --output PATH to save the lines into a file (one per line) rather than print them. Default stays printing.",
    ))
    checks = _RAN + fill('''
        def check_print_default():
            expect(ran().lines, $lines, "the printed lines with no option")

        def check_output_file():
            import os
            r = ran("--output", "out.txt")
            assert os.path.exists("out.txt"), "with --output out.txt no file out.txt was written"
            with open("out.txt") as f:
                expect([l.strip() for l in f if l.strip()], $lines, "the lines in out.txt")
            expect(r.lines, [], "what is printed with --output")
    ''', lines=repr(lines))
    reference = fill('''
        import argparse

        LINES = $lines

        parser = argparse.ArgumentParser()
        parser.add_argument("--output")
        args = parser.parse_args()
        if args.output:
            with open(args.output, "w") as f:
                for line in LINES:
                    f.write(line + "\\n")
        else:
            for line in LINES:
                print(line)
    ''', lines=repr(lines))
    return TaskSpec(script, request, checks, reference, "lines.py")


TEMPLATES = (
    Template("argv_name", CATEGORY, TRAIN, argv_name),
    Template("times_option", CATEGORY, TRAIN, times_option),
    Template("sum_arguments", CATEGORY, TRAIN, sum_arguments),
    Template("upper_flag", CATEGORY, HELD_OUT, upper_flag),
    Template("output_option", CATEGORY, HELD_OUT, output_option),
)
