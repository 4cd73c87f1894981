"""Errors raised by wsd-capture."""


class CaptureError(Exception):
    """A pipeline cannot be loaded or captured; the message says why and what to do."""
