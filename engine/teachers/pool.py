"""Build teachers from the configuration and hand each agent its ordered list."""

from __future__ import annotations

from engine.config import Config, TeacherConfig
from engine.errors import ConfigError, ModelNotFound, TeacherError, TeacherUnavailable
from engine.teachers.base import Teacher


def build_teacher(config: TeacherConfig) -> Teacher:
    if config.backend == "embedded":
        from engine.teachers.embedded import EmbeddedTeacher

        return EmbeddedTeacher(config)
    if config.backend == "ollama":
        from engine.teachers.ollama_backend import OllamaTeacher

        return OllamaTeacher(config)
    if config.backend == "openai":
        from engine.teachers.openai_compat import OpenAICompatTeacher

        return OpenAICompatTeacher(config)
    if config.backend == "student":
        from engine.teachers.student import StudentTeacher

        return StudentTeacher(config)
    raise ConfigError(f"teacher '{config.name}': unknown backend '{config.backend}'")


class TeacherPool:
    """Teachers by name, built once; `for_agent` gives an agent's teachers in configured order.

    Tests and the app can pass ready teachers (`extra`) that override configured names.
    """

    def __init__(self, config: Config, extra: dict[str, Teacher] | None = None) -> None:
        self.config = config
        self._teachers: dict[str, Teacher] = dict(extra or {})

    def get(self, name: str) -> Teacher:
        if name not in self._teachers:
            if name not in self.config.teachers:
                raise ConfigError(f"no teacher named '{name}' in {self.config.config_path}")
            self._teachers[name] = build_teacher(self.config.teachers[name])
        return self._teachers[name]

    def names_for(self, agent: str) -> list[str]:
        return list(self.config.agents[agent])

    def for_agent(self, agent: str) -> list[Teacher]:
        return [self.get(name) for name in self.names_for(agent)]

    def health(self) -> dict[str, str | None]:
        """Check every configured teacher; map name -> None when healthy, else the reason."""
        report: dict[str, str | None] = {}
        names = dict.fromkeys(n for agent in self.config.agents.values() for n in agent)
        for name in names:
            try:
                self.get(name).health()
                report[name] = None
            except TeacherError as err:
                report[name] = str(err)
        return report

    def require_healthy(self) -> None:
        """Before a session starts: every agent must have at least one teacher that answers."""
        checked: dict[str, TeacherError | None] = {}
        for agent in self.config.agents:
            problems: list[TeacherError] = []
            for name in self.names_for(agent):
                if name not in checked:
                    try:
                        self.get(name).health()
                        checked[name] = None
                    except TeacherError as err:
                        checked[name] = err
                if checked[name] is None:
                    break
                problems.append(checked[name])
            else:
                kind = ModelNotFound if any(isinstance(p, ModelNotFound) for p in problems) else TeacherUnavailable
                raise kind(f"the {agent} has no teacher that answers: {'; '.join(map(str, problems))}")

    def close(self) -> None:
        for teacher in self._teachers.values():
            teacher.close()

