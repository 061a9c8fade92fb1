"""What the age format refuses, as exceptions whose message is one line."""

from __future__ import annotations


class AgeError(Exception):
    """A key or file the age format refuses; the message is one line."""


class WrongKeyError(AgeError):
    """The file is sealed to recipients this identity is not one of."""


class NotAgeFileError(AgeError):
    """The file does not start with an age v1 header (or it is cut short)."""
