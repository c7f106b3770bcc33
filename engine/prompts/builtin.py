"""The built-in prompts: each agent's instructions and the user message it is given.

A system message is the agent's *instructions* (what the `[prompts]` table can replace with a saved
version) followed by its answer format, which comes from the agent's `Shape` and cannot be replaced:
a prompt edited by a user can change what the agent does, never the protocol the engine parses.

The user messages are built here too, from the agent's inputs. `TEMPLATE_REVISION` is part of every
prompt version: change a template below and bump it, so rows written before and after differ.
"""

from __future__ import annotations

TEMPLATE_REVISION = 1

PLANNER = (
    "You plan changes to a Python script. Split the change request into a few small steps that can "
    "each be done and checked on their own. A small request is one step."
)

LEAD = (
    "You are the project lead for changes to a Python script. Write one clear instruction for the "
    "programmer who will rewrite the script. Say exactly what to change and what to keep: the "
    "programmer must not delete the script's other functions or its checks. Do not write the code yourself."
)

WORKER = (
    "You are a careful Python programmer. You get an instruction and a Python script. Rewrite the "
    "script so that it follows the instruction, and keep everything the instruction does not ask you "
    "to change."
)

ANALYZER = (
    "You classify a user's feedback on a change to a Python script:\n"
    "ACCEPTED - the user is satisfied with the change.\n"
    "REDO - the change is wrong and must be done again from the start.\n"
    "EDIT - the change is partly right but needs more changes."
)

JUDGE = (
    "You compare two answers written for the same request (two Python scripts, or two texts) and say "
    "which one does the job better."
)

INSTRUCTIONS = {"planner": PLANNER, "lead": LEAD, "worker": WORKER, "analyzer": ANALYZER, "judge": JUDGE}
PROMPT_AGENTS = tuple(INSTRUCTIONS)


def fenced(script: str) -> str:
    return f"```python\n{script if script.endswith(chr(10)) or not script else script + chr(10)}```"


def planner_user(request: str, script: str, max_steps: int) -> str:
    return f"Change request: {request}\n\nScript:\n{fenced(script)}\n\nList at most {max_steps} steps."


def lead_user(
    request: str,
    step: str,
    script: str,
    *,
    error: str | None = None,
    failed_script: str | None = None,
    feedback: str | None = None,
    feedback_kind: str | None = None,
    previous_output: str | None = None,
) -> str:
    parts = [f"Overall request: {request}", f"Current step: {step}", f"Current script:\n{fenced(script)}"]
    if error is not None:
        parts.append(f"The programmer's last script failed when it ran:\n{fenced(failed_script or '')}")
        parts.append(f"Error:\n{error}")
        parts.append("Write an instruction that fixes this error.")
    elif feedback_kind == "redo":
        parts.append(f"The programmer's last attempt was rejected by the user:\n{fenced(previous_output or '')}")
        parts.append(f"User feedback: {feedback}")
        parts.append("Write a new instruction for this step that avoids that mistake, starting again from the current script.")
    elif feedback_kind == "further_edit":
        parts.append(f"User feedback on the current script: {feedback}")
        parts.append("Write an instruction that refines the current script as the user asks.")
    else:
        parts.append("Write the instruction for this step.")
    return "\n\n".join(parts)


def worker_user(instruction: str, script: str) -> str:
    return f"Instruction: {instruction}\n\nScript:\n{fenced(script)}"


def analyzer_user(feedback: str, step: str) -> str:
    return f"Step: {step}\nFeedback: {feedback}"


def judge_user(instruction: str, script_a: str, script_b: str) -> str:
    return (f"Request: {instruction}\n\nScript A:\n{fenced(script_a)}\n\nScript B:\n{fenced(script_b)}\n\n"
            "Which script follows the request better, A or B?")


# The analyzer's channel scorer: what replies under each label look like (see engine/agents/analyzer.py).
CHANNEL_REPLIERS = {
    "accepted": "satisfied with the change; they accept it as it is",
    "redo": "unhappy: the change is wrong and must be done again from the start",
    "further_edit": "partly happy: they keep the change but ask for more changes",
}
CHANNEL_ASK = "Another reply, please."


def channel_messages(label: str, examples: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """A conversation in which the model has written replies of users who are in one state."""
    messages = [{"role": "system", "content": f"You write replies from users who are {CHANNEL_REPLIERS[label]}, "
                                              "after a programmer changed their Python script."}]
    for example in examples:
        messages += [{"role": "user", "content": CHANNEL_ASK}, {"role": "assistant", "content": example}]
    return messages + [{"role": "user", "content": CHANNEL_ASK}]


def judge_text_user(request: str, answer_a: str, answer_b: str) -> str:
    return f"Request:\n{request}\n\nAnswer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\nWhich is better, A or B?"
