"""How many of a grammar-constrained teacher's chosen tokens are not the student tokenizer's own pieces.

The embedded SmolLM2 teacher answers the worker, lead and analyzer calls of the test tasks greedily,
once held to each agent's grammar and once unconstrained; `trainer.canonical.non_canonical_tokens`
counts the tokens whose byte span is not one token of the student's tokenization of the answer (the
grammar spells fixed words such as `REASONING:` in pieces the tokenizer would not choose). Prints one
JSON object as its last line.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.agents.call import generate  # noqa: E402
from engine.config import TeacherConfig  # noqa: E402
from engine.prompts import DEFAULT_BOOK  # noqa: E402
from engine.teachers.base import SamplingParams  # noqa: E402
from engine.teachers.embedded import EmbeddedTeacher  # noqa: E402
from engine.tokens import StudentVocab  # noqa: E402
from trainer.canonical import non_canonical_tokens  # noqa: E402
from trainer.student import load_tokenizer  # noqa: E402

TASKS = [('print("hello")\n', "say goodbye too"), ("x = 2\nprint(x)\n", "print the square"),
         ("names = ['a', 'b']\n", "print each name"), ("total = 0\n", "add 1 to 3 and print")]


def main() -> None:
    tokenizer = load_tokenizer("")
    vocab = StudentVocab(tokenizer)
    calls = ([DEFAULT_BOOK.worker(request, script) for script, request in TASKS]
             + [DEFAULT_BOOK.lead(request, request, script) for script, request in TASKS]
             + [DEFAULT_BOOK.analyzer("no, do it again", request) for _, request in TASKS])
    result = {}
    for constrain in ("grammar", "off"):
        teacher = EmbeddedTeacher(TeacherConfig(name="smollm2", top_logprobs=4, constrain=constrain))
        tokens = odd = 0
        pieces: Counter = Counter()
        for call in calls:
            gen = generate(teacher, call, SamplingParams(temperature=0.0, max_tokens=120, top_logprobs=4))
            lp = gen.logprobs()
            bad = non_canonical_tokens(lp, gen.text, tokenizer, vocab)
            tokens += len(lp)
            odd += len(bad)
            pieces.update(lp.token_bytes[i].decode("utf-8", "replace") for i in bad)
        result[constrain] = {"tokens": tokens, "non_canonical": odd, "share": round(odd / tokens, 4),
                             "pieces": dict(pieces.most_common(8))}
        print(f"constrain={constrain}: {odd} of {tokens} chosen tokens non-canonical ({odd / tokens:.1%})")
        teacher.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
