"""Errors from the trainer, for the user's eyes (printed without a traceback)."""

from engine.errors import ShakeError


class TrainError(ShakeError):
    """Training cannot start or go on: bad data, bad settings, a missing model."""
