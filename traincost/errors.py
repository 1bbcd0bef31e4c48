"""Exceptions raised by traincost. The library never prints; the CLI maps these to exit codes.

``TraincostUsageError`` (and subclasses) mean the user asked for something invalid: exit code 2.
``TraincostError`` otherwise means a failure while doing valid work: exit code 1.
"""

from __future__ import annotations


class TraincostError(Exception):
    """A failure while doing valid work (exit code 1)."""

    exit_code = 1


class TraincostUsageError(TraincostError, ValueError):
    """An invalid user input: a bad parameter, unknown name, malformed file (exit code 2)."""

    exit_code = 2


class SpecError(TraincostUsageError):
    """An invalid architecture description; the message names the parameter and the value."""


class ModelBuildError(TraincostError):
    """A user factory or module raised while being built or walked."""
