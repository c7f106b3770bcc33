"""The built-in prompts: each agent's instructions and the user message it is given.

A system message is the agent's *instructions* (what the `[prompts]` table can replace with a saved
version) followed by its answer format, which comes from the agent's `Shape` and cannot be replaced:
a prompt edited by a user can change what the agent does, never the protocol the engine parses.

The user messages are built here too, from the agent's inputs. `TEMPLATE_REVISION` is part of every
prompt version: change a template below and bump it, so rows written before and after differ.
"""

from __future__ import annotations

TEMPLATE_REVISION = 2  # 2: the worker is given the request, the step and the error or feedback (issue #26)

PLANNER = (
    "You plan changes to a Python script. Split the change request into the steps it names, each one a "
    "change that can be done and checked on its own. A request that names one change is one step. Never "
    "repeat a step in other words, and never add steps for testing or checking."
)

LEAD = (
    "You are the project lead for changes to a Python script. Write one clear instruction for the "
    "programmer who will rewrite the script. Say exactly what to change and what to keep: the "
    "programmer must not delete the script's other functions or its checks. Do not write the code yourself."
)

WORKER = (
    "You are a careful Python programmer. You change a Python script as the user asks, and keep "
    "everything the request does not ask you to change."
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
    project_map: str | None = None,
) -> str:
    parts = [f"Overall request: {request}", f"Current step: {step}", f"Current script:\n{fenced(script)}"]
    if project_map:  # project mode (issue 25): how the script runs and what it imports from its project
        parts.append(project_map)
    if error is not None and failed_script:
        parts.append(f"The programmer's last script failed when it ran:\n{fenced(failed_script)}")
        parts.append(f"Error:\n{error}")
        parts.append("Write an instruction that fixes this error.")
    elif error is not None:  # no script to fix: the answer was unusable (malformed, an echo, no change)
        parts.append(f"The programmer's last answer could not be used:\n{error}")
        parts.append("Write the instruction for this step so that the programmer makes the change.")
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


def worker_user(request: str, step: str, instruction: str | None, script: str, *, error: str | None = None,
                feedback: str | None = None, project_map: str | None = None) -> str:
    """The worker's message: the script, then what to do, last (where a small model attends most).

    The worker works from the user's request and the step; the lead's instruction is added when it
    says more than the step (`instruction` None: the lead gave nothing usable). In a fix cycle `script`
    is the script that failed and `error` what it printed; after feedback, `feedback` is the user's words.
    In project mode (issue 25) `project_map` says how the script runs and what it imports.
    """
    parts = [f"Script:\n{fenced(script)}"]
    if project_map:
        parts.append(project_map)
    if error is not None:
        parts.append(f"When it ran, it failed:\n{error}")
    if feedback is not None:
        parts.append(f"The user said about the last version: {feedback}")
    parts.append(f"Change it as follows: {request}")
    if " ".join(step.split()).lower() != " ".join(request.split()).lower():
        parts.append(f"Do this step now: {step}")
    if instruction and " ".join(instruction.split()).lower() not in (" ".join(step.split()).lower(),
                                                                      " ".join(request.split()).lower()):
        parts.append(f"The project lead says: {instruction}")
    if error is not None:
        parts.append("Fix the error and keep the change.")
    return "\n\n".join(parts)


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
