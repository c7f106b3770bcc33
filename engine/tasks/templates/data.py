"""Stdlib data processing: csv, json, collections (Counter, grouping, ranking)."""

from __future__ import annotations

import random

from engine.tasks.task import HELD_OUT, TRAIN, TaskSpec, Template, fill
from engine.tasks.templates.words import COLOURS, ITEMS, PEOPLE, TEAMS, TITLE_WORDS

CATEGORY = "data_processing"


def _has(fname: str) -> str:
    return f'    assert hasattr(m, "{fname}"), "there is no function {fname}"\n'


def word_count(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("count_words", "word_frequencies", "tally_words", "word_counts"))
    words = [rng.choice(TITLE_WORDS[:5]) for _ in range(8)]
    text = " ".join(w.title() if i % 3 == 0 else w for i, w in enumerate(words))
    script = fill('''
        TEXT = "$text"

        print(TEXT)
    ''', text=text)
    request = rng.choice((
        f"Add a function {fname}(text) that returns a dict mapping each lowercase word to how many times it appears.",
        f"I need {fname}(text): split the text into words, lowercase them, and count them; return the counts as a dict.",
    ))
    checks = fill('''
        def check_counts():
            m = load()
        $has    expect(dict(m.$fname("a b A c b a")), {"a": 3, "b": 2, "c": 1}, '$fname("a b A c b a")')
            expect(dict(m.$fname("")), {}, '$fname("")')

        def check_text():
            m = load()
        $has    got = dict(m.$fname(m.TEXT))
            want = {}
            for w in m.TEXT.lower().split():
                want[w] = want.get(w, 0) + 1
            expect(got, want, "$fname(TEXT)")
    ''', fname=fname, has=_has(fname))
    reference = fill('''
        from collections import Counter

        TEXT = "$text"


        def $fname(text):
            return dict(Counter(text.lower().split()))


        print(TEXT)
    ''', text=text, fname=fname)
    return TaskSpec(script, request, checks, reference, "words.py")


def csv_total(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("column_total", "sum_column", "total_of", "column_sum"))
    script = '''import csv


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
'''
    request = rng.choice((
        f"Add {fname}(path, column) that returns the sum of that column of the CSV file as a float.",
        f"add a function {fname}(path, column): read the csv (it has a header row) and add up the numbers in the column",
    ))
    amounts = [rng.randint(1, 40) + 0.5 * rng.randint(0, 1) for _ in range(3)]
    checks = fill('''
        def check_total():
            with open("data.csv", "w") as f:
                f.write("item,amount,qty\\n")
                for i, (amount, qty) in enumerate(zip($amounts, [1, 2, 3])):
                    f.write(f"x{i},{amount},{qty}\\n")
            m = load()
        $has    expect(m.$fname("data.csv", "amount"), $total, '$fname("data.csv", "amount")')
            expect(m.$fname("data.csv", "qty"), 6.0, '$fname("data.csv", "qty")')
    ''', amounts=repr(amounts), total=repr(float(sum(amounts))), fname=fname, has=_has(fname))
    reference = script + fill('''


        def $fname(path, column):
            return sum(float(row[column]) for row in read_rows(path))
    ''', fname=fname)
    return TaskSpec(script, request, checks, reference, "ledger.py")


def json_roundtrip(rng: random.Random) -> TaskSpec:
    save, load_ = rng.choice((("save_settings", "load_settings"), ("write_config", "read_config"),
                              ("store_prefs", "fetch_prefs")))
    settings = {"theme": rng.choice(COLOURS), "size": rng.randint(8, 20), "recent": rng.sample(ITEMS, 2)}
    script = fill('''
        settings = $settings

        print(settings)
    ''', settings=repr(settings))
    request = rng.choice((
        f"Add {save}(path, settings) that writes the dict as JSON to the file, and {load_}(path) that reads it back.",
        f"I want to keep the settings between runs: {save}(path, settings) saves them as json, {load_}(path) loads them.",
    ))
    checks = fill('''
        import json

        def check_roundtrip():
            m = load()
            for name in ("$save", "$load"):
                assert hasattr(m, name), f"there is no function {name}"
            data = {"a": 1, "b": [1, 2], "c": {"d": "e"}}
            m.$save("s.json", data)
            expect(m.$load("s.json"), data, "what $load reads back")

        def check_is_json():
            m = load()
            assert hasattr(m, "$save"), "there is no function $save"
            m.$save("t.json", {"x": 2})
            with open("t.json") as f:
                expect(json.load(f), {"x": 2}, "the JSON in the saved file")
    ''', save=save, load=load_)
    reference = fill('''
        import json

        settings = $settings


        def $save(path, settings):
            with open(path, "w") as f:
                json.dump(settings, f)


        def $load(path):
            with open(path) as f:
                return json.load(f)


        print(settings)
    ''', settings=repr(settings), save=save, load=load_)
    return TaskSpec(script, request, checks, reference, "settings.py")


def group_by(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("group_by_team", "teams_of", "members_by_team", "by_team"))
    pairs = [(p, rng.choice(TEAMS[:3])) for p in rng.sample(PEOPLE, 6)]
    script = fill('''
        PEOPLE = $pairs

        for name, team in PEOPLE:
            print(name, team)
    ''', pairs=repr(pairs))
    request = rng.choice((
        f"Add {fname}(pairs) that returns a dict from each team to the sorted list of its members' names.",
        f"Write {fname}(pairs): pairs are (name, team); give back {{team: [names, sorted]}}.",
    ))
    checks = fill('''
        def check_small():
            m = load()
        $has    got = m.$fname([("zoe", "red"), ("al", "blue"), ("bea", "red")])
            expect(dict(got), {"red": ["bea", "zoe"], "blue": ["al"]}, "$fname for zoe/red, al/blue, bea/red")

        def check_people():
            m = load()
        $has    want = {}
            for name, team in m.PEOPLE:
                want.setdefault(team, []).append(name)
            expect(dict(m.$fname(m.PEOPLE)), {t: sorted(n) for t, n in want.items()}, "$fname(PEOPLE)")
            expect(dict(m.$fname([])), {}, "$fname([])")
    ''', fname=fname, has=_has(fname))
    reference = fill('''
        from collections import defaultdict

        PEOPLE = $pairs


        def $fname(pairs):
            teams = defaultdict(list)
            for name, team in pairs:
                teams[team].append(name)
            return {team: sorted(names) for team, names in teams.items()}


        for name, team in PEOPLE:
            print(name, team)
    ''', pairs=repr(pairs), fname=fname)
    return TaskSpec(script, request, checks, reference, "teams.py")


def top_words(rng: random.Random) -> TaskSpec:
    fname = rng.choice(("top_n", "most_common_words", "top_words", "leaders"))
    words = [rng.choice(TITLE_WORDS[:6]) for _ in range(12)]
    script = fill('''
        from collections import Counter

        WORDS = $words

        print(Counter(WORDS))
    ''', words=repr(words))
    request = rng.choice((
        f"Add {fname}(words, n) that returns the n most common words, most common first; ties go alphabetically.",
        f"add a function {fname}(words, n) giving a list of the n most frequent words (highest count first, "
        "equal counts in alphabetical order)",
    ))
    checks = fill('''
        def check_order():
            m = load()
        $has    words = ["b", "a", "c", "b", "a", "d", "b"]
            expect(list(m.$fname(words, 2)), ["b", "a"], "$fname(['b', 'a', 'c', 'b', 'a', 'd', 'b'], 2)")
            expect(list(m.$fname(words, 4)), ["b", "a", "c", "d"], "the same words with n = 4")

        def check_ties():
            m = load()
        $has    expect(list(m.$fname(["z", "y", "x"], 2)), ["x", "y"], "$fname(['z', 'y', 'x'], 2)")
    ''', fname=fname, has=_has(fname))
    reference = fill('''
        from collections import Counter

        WORDS = $words


        def $fname(words, n):
            counts = Counter(words)
            ranked = sorted(counts, key=lambda w: (-counts[w], w))
            return ranked[:n]


        print(Counter(WORDS))
    ''', words=repr(words), fname=fname)
    return TaskSpec(script, request, checks, reference, "ranking.py")


TEMPLATES = (
    Template("word_count", CATEGORY, TRAIN, word_count),
    Template("csv_total", CATEGORY, TRAIN, csv_total),
    Template("top_words", CATEGORY, TRAIN, top_words),
    Template("json_roundtrip", CATEGORY, HELD_OUT, json_roundtrip),
    Template("group_by", CATEGORY, HELD_OUT, group_by),
)
