"""Datasets made the way the product makes them: sessions through the engine, into the store."""

from __future__ import annotations

from pathlib import Path

from engine.agents.analyzer import Classification
from engine.config import load_config
from engine.session import Session
from engine.store import DatasetStore
from engine.teachers.base import Generation
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer

TASKS = [
    ('print("hello")\n', "say goodbye too", 'print("hello")\nprint("goodbye")\n'),
    ("x = 2\nprint(x)\n", "print the square", "x = 2\nprint(x)\nprint(x * x)\n"),
    ("names = ['a', 'b']\n", "print each name", "names = ['a', 'b']\nfor n in names:\n    print(n)\n"),
    ("total = 0\n", "add 1 to 3 and print", "total = 0\nfor i in range(1, 4):\n    total += i\nprint(total)\n"),
]


class ScoredTeacher(ScriptedTeacher):
    """Scripted answers whose log-probabilities come from a real teacher's teacher-forced scoring."""

    def __init__(self, name, answers, real):
        super().__init__(name, answers)
        self.real = real

    def generate(self, messages, sampling, *, on_token=None, cancel=None):
        gen = super().generate(messages, sampling, on_token=on_token, cancel=cancel)
        if self.agent_of(messages) != "worker" or self.real is None:
            return gen
        scored = self.real.score(messages, gen.text, top_logprobs=8)
        return Generation(gen.text, scored.to_tokens(), self.identity, sampling)

    def score(self, messages, response, *, top_logprobs):
        return self.real.score(messages, response, top_logprobs=top_logprobs) if self.real else super().score(messages, response, top_logprobs=top_logprobs)


def make_dataset(data_dir: Path, tmp: Path, real_teacher=None, repeats: int = 1) -> int:
    """Sessions over TASKS: an error, a Redo, then Accepted; then a second step accepted at once."""
    config = load_config()
    with DatasetStore(data_dir) as store:
        for r in range(repeats):
            for i, (script, request, good) in enumerate(TASKS):
                path = tmp / f"task{r}_{i}.py"
                path.write_text(script)
                bad = script + "raise SystemExit('not yet')\n"
                teacher = ScoredTeacher("a", {
                    "planner": ["1. Make the change\n2. Add a comment"],
                    "worker": [worker_answer(bad), worker_answer(script + "print('wrong')\n"), worker_answer(good),
                               worker_answer("# done\n" + good)],
                }, real_teacher)
                pool = TeacherPool(config, extra={"a": teacher, "b": teacher})
                session = Session.start(store, pool, config, path, f"{request}, then add a comment")  # two steps
                session.plan()
                session.propose()
                session.apply_feedback(Classification("redo", "user", "not that"))
                session.propose()
                session.apply_feedback(Classification("accepted", "user", ""))
                session.propose()
                session.apply_feedback(Classification("accepted", "user", ""))
        return store.stats().complete_rows
