"""`shake prompts list | show | add | optimize`: see, write and improve the agents' prompts."""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from pathlib import Path

from engine.config import PROMPT_AGENTS, load_config
from engine.errors import InputError
from engine.prompts import load_prompt_book
from engine.prompts.book import AgentPrompt, builtin_prompt
from engine.prompts.saved import is_version_name, list_prompts, load_prompt, save_prompt, unusable_prompts

MAX_INSTRUCTIONS_BYTES = 20_000
OPTIMIZABLE = ("lead", "worker", "analyzer")


def add_commands(sub: argparse._SubParsersAction) -> None:
    prompts = sub.add_parser("prompts", help="the agents' prompts: list, show, add an edited one, optimize "
                             "(few-shot demonstrations, DSPy-style)").add_subparsers(dest="prompts_cmd", required=True)
    p = prompts.add_parser("list", help="the built-in, pinned and saved prompt versions")
    p.set_defaults(func=cmd_list)
    p = prompts.add_parser("show", help="print a prompt: the system message and its demonstrations")
    p.add_argument("name", help="an agent (its prompt in effect) or a saved version")
    p.add_argument("--form", choices=("text", "json"), default="text", help="the answer form to render")
    p.set_defaults(func=cmd_show)
    p = prompts.add_parser("add", help="save edited instructions for an agent as a version you can pin")
    p.add_argument("agent", choices=PROMPT_AGENTS)
    p.add_argument("--from", dest="source", required=True, type=Path, metavar="FILE",
                   help="a UTF-8 text file with the instructions (the answer format is added by shake)")
    p.add_argument("--pin", action="store_true", help="also pin it in the config file's [prompts] table")
    p.set_defaults(func=cmd_add)
    p = prompts.add_parser("optimize", help="bootstrap demonstrations from accepted steps, keep the best set on "
                           "held-out steps, save it as a version")
    p.add_argument("--agents", default="lead,worker,analyzer",
                   help=f"comma-separated, from {', '.join(OPTIMIZABLE)} (default: all three)")
    p.add_argument("--source", choices=("suite", "dataset"), default="suite",
                   help="suite: the task suite's train split and the shipped labelled feedback; "
                        "dataset: your accepted steps and labelled feedback")
    p.add_argument("--train", type=int, default=16, help="steps (or feedback lines x3) to bootstrap from")
    p.add_argument("--validation", type=int, default=8, help="held-out steps (or feedback lines x3) to score on")
    p.add_argument("--max-demos", type=int, default=3, help="demonstrations per agent in a candidate")
    p.add_argument("--candidates", type=int, default=4, help="random candidate sets besides the fixed ones")
    p.add_argument("--cycles", type=int, default=2, help="cycles per step while bootstrapping and scoring")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pin", action="store_true", help="pin the winners in the config file's [prompts] table")
    p.set_defaults(func=cmd_optimize)


def cmd_list(args: argparse.Namespace) -> int:
    config = load_config()
    pinned = dataclasses.asdict(config.prompts)
    saved = list_prompts(config.data_dir)
    for agent in PROMPT_AGENTS:
        mark = " (in effect)" if not pinned[agent] else ""
        print(f"{agent}")
        print(f"  {builtin_prompt(agent).version}  built in{mark}")
        for item in (s for s in saved if s.prompt.agent == agent):
            mark = " (pinned)" if pinned[agent] == item.version else ""
            score = item.note.get("summary", "")
            print(f"  {item.version}  {len(item.prompt.demos)} demos, {item.created_at}{mark}  {score}".rstrip())
    for path, reason in unusable_prompts(config.data_dir):
        print(f"unusable: {path}: {reason}")
    return 0


def _prompt_named(config, name: str) -> AgentPrompt:
    if name in PROMPT_AGENTS:
        return load_prompt_book(config)[name]
    if is_version_name(name):
        return load_prompt(config.data_dir, name).prompt
    raise InputError(f"'{name}' is neither an agent ({', '.join(PROMPT_AGENTS)}) nor a version name (AGENT-<12 hex>)")


def cmd_show(args: argparse.Namespace) -> int:
    config = load_config()
    prompt = _prompt_named(config, args.name)
    form = "json" if args.form == "json" else "off"
    print(f"# {prompt.version} ({prompt.origin}, answer shape {prompt.shape.name})")
    for message in prompt.messages("<the call's own input>", form):
        print(f"--- {message['role']}")
        print(message["content"])
    return 0


def _read_instructions(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"no file at {path}")
    data = path.read_bytes()
    if len(data) > MAX_INSTRUCTIONS_BYTES:
        raise InputError(f"{path} is {len(data)} bytes; instructions up to {MAX_INSTRUCTIONS_BYTES} bytes are supported")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    if not text:
        raise InputError(f"{path} is empty; write the agent's instructions in it")
    return text


def _save(config, prompt: AgentPrompt, note: dict, pin: bool) -> None:
    from engine.config_edit import pin_prompt
    from engine.store.store import now_iso

    path = save_prompt(config.data_dir, prompt, created_at=now_iso(), note=note)
    print(f"saved {prompt.version} ({len(prompt.demos)} demos) to {path}")
    if pin:
        pin_prompt(config.config_path, prompt.agent, prompt.version)
        print(f"pinned in {config.config_path}: [prompts] {prompt.agent} = \"{prompt.version}\"")
    else:
        print(f"pin it with: [prompts] {prompt.agent} = \"{prompt.version}\"  (or pass --pin)")


def cmd_add(args: argparse.Namespace) -> int:
    config = load_config()
    base = builtin_prompt(args.agent)
    prompt = dataclasses.replace(base, instructions=_read_instructions(args.source), origin="saved")
    _save(config, prompt, {"source": str(args.source), "summary": "edited instructions"}, args.pin)
    return 0


# -- optimize ----------------------------------------------------------------------------------
def _agents(text: str) -> list[str]:
    agents = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in agents if a not in OPTIMIZABLE]
    if unknown or not agents:
        raise InputError(f"--agents takes {', '.join(OPTIMIZABLE)}; got {text!r}")
    return agents


def cmd_optimize(args: argparse.Namespace) -> int:
    from engine.prompts import optimize as opt
    from engine.prompts.sources import dataset_sources, suite_sources
    from engine.prompts.trial import TrialTeachers
    from engine.teachers.pool import TeacherPool

    agents = _agents(args.agents)
    for flag in ("train", "validation", "max_demos", "candidates", "cycles"):
        if getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1")
    config = load_config()
    settings = opt.OptimizeSettings(args.max_demos, args.candidates, args.cycles, args.seed)
    book = load_prompt_book(config)
    pool = TeacherPool(config)
    say = lambda line: print(line, flush=True)  # noqa: E731
    rng = random.Random(args.seed)
    try:
        if args.source == "suite":
            sources = suite_sources(config, args.train, args.validation, rng)
        else:
            sources = dataset_sources(config, args.train, args.validation, rng)
        step_agents = [a for a in agents if a in ("lead", "worker")]
        if step_agents:
            if not sources.validation_steps or not (sources.train_steps or sources.labelled.get("worker")):
                raise InputError(f"no accepted steps to learn from in the {args.source} source; "
                                 "accept a few steps in sessions first, or use --source suite")
            teachers = TrialTeachers(pool.for_agent("lead")[0], pool.for_agent("worker")[0])
            result = opt.optimize_steps(sources.train_steps, sources.validation_steps, book, teachers, config, settings,
                                        labelled=sources.labelled, progress=say)
            _report_and_save(config, book, result, step_agents, args, "pass rate", len(sources.validation_steps))
        if "analyzer" in agents:
            if not sources.validation_feedback:
                raise InputError(f"no labelled feedback in the {args.source} source")
            result = opt.optimize_analyzer(sources.train_feedback, sources.validation_feedback, book,
                                           pool.for_agent("analyzer")[0], config, settings, progress=say)
            _report_and_save(config, book, result, ["analyzer"], args, "accuracy", len(sources.validation_feedback))
    finally:
        pool.close()
    return 0


def _report_and_save(config, book, result, agents: list[str], args, metric: str, n_validation: int) -> None:
    best = result.best
    zero = next(c for c in result.candidates if c.name == "zero-shot")
    rate = lambda c: c.score / max(c.scored_on, 1)  # noqa: E731
    summary = f"{metric} {best.score:g}/{best.scored_on} held-out (zero-shot {zero.score:g}/{zero.scored_on})"
    print(f"best: {best.name}; {summary}")
    if best.name == "zero-shot" or rate(best) <= rate(zero):
        print("the zero-shot prompt was not beaten; nothing saved")
        return
    for agent in agents:
        demos = best.demos.get(agent, ())
        if not demos:
            continue
        prompt = book[agent].with_demos(demos)
        note = {"summary": summary, "source": args.source, "seed": args.seed, "search": result.report()}
        _save(config, dataclasses.replace(prompt, origin="saved"), note, args.pin)
    sys.stdout.flush()
