"""Progress reporting and cancellation for every long loop in the core.

The core never imports ComfyUI. Long loops call :meth:`RunControl.tick`, which forwards
progress to an optional callback and raises :class:`~.errors.GenerationCancelled` when the
optional cancel hook says so. ComfyUI nodes pass a callback that advances
``comfy.utils.ProgressBar`` and a cancel hook that checks ComfyUI's interrupt flag.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .errors import GenerationCancelled

#: ``progress(stage, done, total)``: ``stage`` is a short label such as ``"denoise"``.
ProgressFn = Callable[[str, int, int], None]
#: ``should_cancel() -> bool``; it may also raise its own exception (ComfyUI's interrupt does).
CancelFn = Callable[[], bool]


@dataclass(frozen=True)
class RunControl:
    """Optional progress callback plus optional cancel hook, passed down the call tree."""

    progress: Optional[ProgressFn] = None
    should_cancel: Optional[CancelFn] = None

    def check_cancel(self) -> None:
        """Raise :class:`GenerationCancelled` if the cancel hook asks to stop."""
        if self.should_cancel is not None and self.should_cancel():
            raise GenerationCancelled("cancelled by the caller; nothing was written")

    def tick(self, stage: str, done: int, total: int) -> None:
        """Report ``done`` of ``total`` for ``stage``, then honour a pending cancel."""
        if self.progress is not None:
            self.progress(stage, done, total)
        self.check_cancel()


#: A control that reports nothing and never cancels.
NO_CONTROL = RunControl()
