"""Errors raised by wsd-artifacts."""

from __future__ import annotations

from collections.abc import Sequence


class ArtifactError(Exception):
    """An artifact on disk is missing, malformed or does not match its record."""


class ManifestError(ArtifactError):
    """A manifest is missing, unreadable, from a newer version, or breaks its schema.

    ``problems`` holds one line per problem (``"<field path>: <what was
    expected>"``) when the manifest was read but is invalid; the message
    joins them after ``message``.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        self.message = message
        super().__init__(f"{message}: {'; '.join(self.problems)}" if self.problems else message)
