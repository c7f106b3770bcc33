"""Errors a user can act on.

Every failure that reaches the user is a `ShakeError` with one sentence that says what went wrong
and, where there is one, what to do about it. Callers (the CLI and the app) print `str(err)` and
never a traceback.
"""

from __future__ import annotations


class ShakeError(Exception):
    """Base of every error meant for the user's eyes."""


class ConfigError(ShakeError):
    """The configuration file is missing a value, has an unknown key or a bad value."""


class InputError(ShakeError):
    """The user's script, request or feedback cannot be used as given."""


class TeacherError(ShakeError):
    """A teacher backend failed: server down, model missing, bad reply."""


class TeacherUnavailable(TeacherError):
    """The teacher could not be reached at all (connection refused, timeout, 503 while loading)."""


class ModelNotFound(TeacherError):
    """The server answered but does not have the requested model."""


class ScoringUnsupported(TeacherError):
    """The backend cannot compute teacher-forced log-probabilities of a given text."""


class StudentError(ShakeError):
    """A trained student or its run directory cannot be found or loaded as given."""


class GenerationCancelled(ShakeError):
    """The user cancelled a generation; nothing of it is stored."""


class OutputFormatError(ShakeError):
    """A model's output could not be parsed into what its agent must return."""


class StoreError(ShakeError):
    """The dataset store could not be opened or written; nothing was half-written."""


class BadDataFile(StoreError):
    """A file in the data directory does not have the shape shake writes; the message names it."""


class StoreLocked(StoreError):
    """Another `shake` process holds the data directory."""


class SessionError(ShakeError):
    """An action does not fit the session's current state."""


class AttemptsExhausted(SessionError):
    """Every teacher in the worker's pool failed its share of attempts on this step."""
