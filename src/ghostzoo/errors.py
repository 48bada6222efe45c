"""Exceptions raised for bad user input.

Every error a user can cause derives from :class:`GhostzooError`, so the CLI can print its message as
one line and exit non-zero, while genuine bugs still surface with a traceback.
"""


class GhostzooError(Exception):
    """Base class: the message is written for the user and fits on one line."""


class UnknownModelError(GhostzooError, KeyError):
    """A model or pretrained-tag name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(GhostzooError):
    """A checkpoint that cannot be found, downloaded, read, or does not fit the model."""


class ImageError(GhostzooError):
    """An image file that cannot be read or decoded."""
