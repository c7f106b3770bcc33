"""Each agent's prompt as one typed value, and the book of the prompts a session uses.

An `AgentPrompt` is the agent's instructions, its answer `Shape` and its few-shot demonstrations.
Its `version` is a hash of all three and of the user-message templates' revision, so a row that
records "worker-3f2a9c01b2d4" says exactly which prompt produced it, and a dataset can be filtered
by it. The same version names a saved prompt (`engine.prompts.saved`) that `[prompts]` can pin.

`PromptCall` is one filled-in prompt: the agent's prompt plus this call's user message. The
messages depend on the teacher's answer form (the text form, or JSON for a teacher held to a JSON
schema), so a call renders them per teacher: `call.messages(form)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from engine.agents.shapes import SHAPES, Shape, planner_shape
from engine.prompts import builtin
from engine.teachers.base import Constraint, Message

VERSION_DIGITS = 12


@dataclass(frozen=True)
class Demo:
    """One worked example: the user message and the answer's fields (rendered per form)."""

    user: str
    fields: dict = field(hash=False)

    def as_dict(self) -> dict:
        return {"user": self.user, "fields": self.fields}


@dataclass(frozen=True)
class AgentPrompt:
    agent: str  # planner | lead | worker | analyzer | judge
    instructions: str
    shape: Shape
    demos: tuple[Demo, ...] = ()
    origin: str = "built-in"  # built-in | saved (a version from DATA/prompts) | ...

    @property
    def version(self) -> str:
        payload = json.dumps({"agent": self.agent, "instructions": self.instructions, "shape": self.shape.name,
                              "templates": builtin.TEMPLATE_REVISION, "demos": [d.as_dict() for d in self.demos]},
                             sort_keys=True, ensure_ascii=False)
        return f"{self.agent}-{hashlib.sha256(payload.encode()).hexdigest()[:VERSION_DIGITS]}"

    def system(self, form: str) -> str:
        answer_format = self.shape.format_text(form)
        return f"{self.instructions}\n\n{answer_format}" if answer_format else self.instructions

    def messages(self, user: str, form: str) -> list[Message]:
        out: list[Message] = [{"role": "system", "content": self.system(form)}]
        for demo in self.demos:
            out.append({"role": "user", "content": demo.user})
            out.append({"role": "assistant", "content": self.shape.render(demo.fields, form)})
        out.append({"role": "user", "content": user})
        return out

    def with_demos(self, demos: tuple[Demo, ...] | list[Demo]) -> AgentPrompt:
        return replace(self, demos=tuple(demos))


def builtin_prompt(agent: str) -> AgentPrompt:
    return AgentPrompt(agent, builtin.INSTRUCTIONS[agent], SHAPES[agent])


@dataclass(frozen=True)
class PromptCall:
    """One agent call: the prompt and this call's user message; messages rendered per answer form."""

    prompt: AgentPrompt
    user: str

    @property
    def agent(self) -> str:
        return self.prompt.agent

    @property
    def version(self) -> str:
        return self.prompt.version

    def messages(self, form: str = "off") -> list[Message]:
        return self.prompt.messages(self.user, form)

    def constraint(self) -> Constraint:
        return self.prompt.shape.constraint()


class PromptBook:
    """The prompts one session uses, by agent: built in, or a saved version pinned in `[prompts]`."""

    def __init__(self, prompts: dict[str, AgentPrompt] | None = None) -> None:
        self._prompts = {agent: builtin_prompt(agent) for agent in builtin.PROMPT_AGENTS}
        self._prompts.update(prompts or {})

    def __getitem__(self, agent: str) -> AgentPrompt:
        return self._prompts[agent]

    def __iter__(self):
        return iter(self._prompts.values())

    # -- calls, one per agent input ---------------------------------------------------------------
    def planner(self, request: str, script: str, max_steps: int) -> PromptCall:
        prompt = self["planner"]
        # The step bound is a setting, not a new protocol: the shape keeps its name and version.
        prompt = replace(prompt, shape=planner_shape(max_steps))
        return PromptCall(prompt, builtin.planner_user(request, script, max_steps))

    def lead(self, request: str, step: str, script: str, **context) -> PromptCall:
        return PromptCall(self["lead"], builtin.lead_user(request, step, script, **context))

    def worker(self, request: str, step: str, instruction: str | None, script: str, *, error: str | None = None,
               feedback: str | None = None, project_map: str | None = None) -> PromptCall:
        return PromptCall(self["worker"], builtin.worker_user(request, step, instruction, script, error=error,
                                                              feedback=feedback, project_map=project_map))

    def analyzer(self, feedback: str, step: str) -> PromptCall:
        return PromptCall(self["analyzer"], builtin.analyzer_user(feedback, step))

    def judge(self, instruction: str, script_a: str, script_b: str) -> PromptCall:
        return PromptCall(self["judge"], builtin.judge_user(instruction, script_a, script_b))

    def judge_text(self, request: str, answer_a: str, answer_b: str) -> PromptCall:
        return PromptCall(self["judge"], builtin.judge_text_user(request, answer_a, answer_b))


DEFAULT_BOOK = PromptBook()
