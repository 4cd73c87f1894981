"""Library chatter off, so command lines keep stderr for their own one-line errors."""

from __future__ import annotations


def quiet_libraries() -> None:
    """Keep stderr for our own one-line errors: no library progress bars or advice."""
    import transformers.utils.logging as transformers_logging

    # Before diffusers' imports warn. These two functions lack annotations.
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    import diffusers.utils.logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
