"""Errors raised by wsd-compile. Each message says what was wrong and what to do."""


class WsdCompileError(Exception):
    """Base class of every error wsd-compile raises on purpose."""


class ToolchainError(WsdCompileError):
    """A tool or prebuilt object the WebGPU build needs is missing or failed."""
