"""A Hypothesis state machine drives the real `Session` through random event sequences and, after every
step, compares the store with the reference model (`reference_rules.py`) and runs every invariant of
`shake data check`.

Events: proposals whose cycles are malformed, fail when run or run (teacher switches and stalls follow),
Redo, Further edit, Accept (explicit, or through the analyzer with the user overriding its label),
cancel mid-generation, kill and resume (a new store and session object on the same data), `data rescore`;
configurations: side-chain on or off, student-first, a KD teacher or none. `make test` runs a bounded
profile; SHAKE_LONG_PROPERTY=1 runs a long one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.agents.analyzer import Classification
from engine.config import load_config
from engine.errors import AttemptsExhausted, GenerationCancelled
from engine.rescore import rescore
from engine.session import Session
from engine.store import DatasetStore
from engine.store.check import check_data
from engine.teachers.pool import TeacherPool
from helpers import ScriptedTeacher, worker_answer
from reference_rules import Cancel, Cycle, Feedback, Propose, UserEdit, expected_rows

LONG = os.environ.get("SHAKE_LONG_PROPERTY") == "1"
STEPS = 3


class Programmable(ScriptedTeacher):
    """Worker answers come from one queue shared by every worker teacher (whoever is asked takes the next);
    the judge always prefers the student (so only malformed student answers become negatives); the lead's
    instructions differ per call, so later cycles' prompts differ from the step's."""

    shared: list[str] = []
    lead_calls = 0
    side = False  # a side-chain student answers from its own queue

    def generate(self, messages, sampling, *, on_token=None, cancel=None):
        agent = self.agent_of(messages)
        if agent == "worker" and not self.side:
            self.answers["worker"] = [Programmable.shared.pop(0)] if Programmable.shared else []
        elif agent == "lead":
            Programmable.lead_calls += 1
            self.answers["lead"] = [f"Instruction {Programmable.lead_calls}."]
        elif agent == "judge":
            self.answers["judge"] = ["B"]
        return super().generate(messages, sampling, on_token=on_token, cancel=cancel)


def answer_text(cycle: Cycle) -> str:
    if cycle.kind == "malformed":
        return "I would rather not write code."
    return worker_answer(cycle.script)


cycles = st.lists(
    st.builds(Cycle, kind=st.sampled_from(["malformed", "error", "ok"]),
              script=st.sampled_from(["print(1)\n", "print(2)\n", "x = 3\nprint(x)\n"]),
              student_malformed=st.booleans()),
    min_size=1, max_size=4,
).map(lambda cs: tuple(Cycle(c.kind, "raise SystemExit(3)\n" if c.kind == "error" else c.script, c.student_malformed)
                       for c in cs))


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="shake-stateful-"))
        self.events: list = []
        self.store = None
        self.saved_env = {k: os.environ.get(k) for k in ("SHAKE_CONFIG", "SHAKE_DATA")}

    @initialize(mode=st.sampled_from(["off", "side-chain", "student-first"]), kd=st.booleans(),
                switch=st.integers(1, 3))
    def start(self, mode, kd, switch):
        Programmable.shared = []
        self.mode, self.kd, self.switch = mode, kd, switch
        student = f'[student]\nmode = "{mode}"\nteachers = ["s1"]\n' if mode != "off" else ""
        if kd:
            student = (student or "[student]\n") + 'kd_teacher = "a"\n'
        (self.tmp / "config.toml").write_text(
            '[teachers.a]\nbackend = "embedded"\n[teachers.b]\nbackend = "embedded"\n[teachers.s1]\nbackend = "embedded"\n'
            '[agents]\nplanner = ["a"]\nlead = ["a"]\nworker = ["a", "b"]\nanalyzer = ["a"]\n'
            f'[session]\nswitch_teacher_after = {switch}\n[runner]\nsandbox = "none"\ntimeout_s = 5.0\n'
            '[analyzer]\nscoring = "off"\n' + student)  # scripted teachers' scores are placeholders
        os.environ["SHAKE_CONFIG"] = str(self.tmp / "config.toml")
        os.environ["SHAKE_DATA"] = str(self.tmp / "data")
        self.config = load_config()
        self.a = Programmable("a", {"planner": ["\n".join(f"{i + 1}. Step {i + 1}" for i in range(STEPS))]})
        self.b = Programmable("b")
        # student-first: the student is a worker teacher (shared queue); side-chain: its own answers
        self.s1 = Programmable("s1", backend="student")
        self.s1.side = mode == "side-chain"
        self.workers = (["s1", "a", "b"] if mode == "student-first" else ["a", "b"])
        script = self.tmp / "script.py"
        script.write_text("print('start')\n")
        self.open_store()
        self.session = Session.start(self.store, self.pool, self.config, script,
                                     "First count things. Then count more. Then count again.")
        self.session.plan()

    def open_store(self):
        self.store = DatasetStore(self.config.data_dir)
        self.pool = TeacherPool(self.config, extra={"a": self.a, "b": self.b, "s1": self.s1})

    def teardown(self):
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    # -- events -------------------------------------------------------------------------------
    @precondition(lambda self: self.store is not None and self.session.status in ("working", "stalled"))
    @rule(cs=cycles)
    def propose(self, cs):
        Programmable.shared = [answer_text(c) for c in cs]
        self.s1.answers["worker"] = (["no code at all" if c.student_malformed else worker_answer("print('s')\n")
                                      for c in cs] + ["no code at all"] * 12) if self.mode == "side-chain" else []
        try:
            self.session.propose()
        except AttemptsExhausted:
            pass
        Programmable.shared = []
        self.events.append(Propose(cs))

    @precondition(lambda self: self.store is not None and self.session.status == "review")
    @rule(label=st.sampled_from(["redo", "further_edit", "accepted"]))
    def feedback(self, label):
        self.session.apply_feedback(Classification(label, "explicit", "words"))
        self.events.append(Feedback(label))

    @precondition(lambda self: self.store is not None and self.session.status == "review")
    @rule(said=st.sampled_from(["ACCEPTED", "REDO", "EDIT", "no idea"]), final=st.sampled_from(["redo", "accepted"]))
    def feedback_through_the_analyzer(self, said, final):
        self.a.answers["analyzer"] = [said]
        self.s1.answers["analyzer"] = ["EDIT"]
        guess = self.session.classify("what I think of it")
        self.session.apply_feedback(Classification(final, "user", guess.feedback, guess.raw))
        self.events.append(Feedback(final))

    @precondition(lambda self: self.store is not None and self.session.status in ("review", "stalled"))
    @rule(same=st.booleans())
    def users_own_script(self, same):
        pending = self.session.state.step.proposal
        script = pending.output.script if same and pending is not None else "print('mine')\n"
        self.session.accept_user_edit(script)
        self.events.append(UserEdit(script))

    @precondition(lambda self: self.store is not None and self.session.status in ("working", "stalled"))
    @rule()
    def cancel_mid_generation(self):
        Programmable.shared = [worker_answer("print('never')\n" * 30)]
        cancel = threading.Event()
        self.a.delay_s = self.b.delay_s = self.s1.delay_s = 0.001

        def on_token(agent, text):
            if agent == "worker":
                cancel.set()

        try:
            self.session.propose(on_token=on_token, cancel=cancel)
            raise AssertionError("the cancel was not honoured")
        except GenerationCancelled:
            pass
        finally:
            self.a.delay_s = self.b.delay_s = self.s1.delay_s = 0.0
            Programmable.shared = []
        self.events.append(Cancel())

    @precondition(lambda self: self.store is not None)
    @rule()
    def kill_and_resume(self):
        session_id = self.session.id
        self.store.close()
        self.open_store()
        self.session = Session.resume(self.store, self.pool, self.config, session_id)

    @precondition(lambda self: self.store is not None and self.kd)
    @rule()
    def data_rescore(self):
        before = {r.row_id: r.chosen.text for r in self.store.rows() if r.chosen}
        rescore(self.store, self.a, top_logprobs=2)
        after = {r.row_id: r.chosen.text for r in self.store.rows() if r.chosen}
        assert before == after

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def store_matches_the_reference(self):
        if self.store is None:
            return
        want, position = expected_rows(self.events, workers=self.workers, switch_after=self.switch,
                                       side_chain=self.mode == "side-chain", kd_teacher="a" if self.kd else None,
                                       students={"s1"}, steps=STEPS, start_script="print('start')\n")
        got = []
        for r in self.store.rows():
            if not r.is_worker:
                continue
            lp = r.chosen.logprobs if r.chosen else None
            teacher = r.rejected.teacher.name if r.rejected else ""
            got.append((r.step_index, r.cycle, r.rejected.kind.value if r.rejected else None,
                        r.rejected.script if r.rejected and r.rejected.kind != "student" else "",
                        teacher, r.chosen.script if r.chosen else None, lp.scorer.name if lp else None))
        expected = [(e.step_index, e.cycle, e.kind, e.script, e.teacher, e.chosen_script, e.chosen_scorer) for e in want]
        assert sorted(got, key=repr) == sorted(expected, key=repr)
        assert self.session.step_index == position["step_index"]
        assert (self.session.status == "done") == position["done"]
        assert (self.session.status == "review") == position["review"]

    @invariant()
    def data_check_passes(self):
        if self.store is None:
            return
        problems = check_data(self.config.data_dir)
        assert problems == [], [p.line() for p in problems]


SessionMachine.TestCase.settings = settings(
    max_examples=300 if LONG else 12, stateful_step_count=20 if LONG else 10, deadline=None,
    suppress_health_check=list(HealthCheck),
)
TestSessionRules = SessionMachine.TestCase
