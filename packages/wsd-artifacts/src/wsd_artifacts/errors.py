"""Errors raised by wsd-artifacts."""


class ArtifactError(Exception):
    """An artifact on disk is missing, malformed or does not match its record."""
