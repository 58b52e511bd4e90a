"""Progress reporting and cancellation for every long loop in the core.

The core never imports ComfyUI. Long loops call :meth:`RunControl.tick`, which forwards
progress to an optional callback and raises :class:`~.errors.GenerationCancelled` when the
optional cancel hook says so. ComfyUI nodes pass a callback that advances
``comfy.utils.ProgressBar`` and a cancel hook that checks ComfyUI's interrupt flag.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

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


class ConsoleProgress:
    """A :data:`ProgressFn` for terminals: one tqdm bar per stage label, with rate and ETA.

    Stages nest (``"segment"`` around ``"denoise"``): a bar stays open until its stage reports its
    total, or another report of the same stage restarts it. ``close()`` ends every open bar.
    """

    def __init__(self, stream=None) -> None:
        self._bars: dict[str, object] = {}
        self._stream = stream

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            bar = self._bars[stage] = tqdm(total=total, desc=stage, unit="it", dynamic_ncols=True,
                                           file=self._stream, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


@contextmanager
def console_control(stream=None) -> Iterator[RunControl]:
    """A :class:`RunControl` for command-line runs: progress bars, and Ctrl-C / SIGTERM ask the run to stop.

    The first signal cancels at the next progress report (so writers can remove their partial
    files: :class:`~.errors.GenerationCancelled` propagates through them); a second one stops at
    once. The previous signal handlers are restored afterwards.
    """
    import signal

    requested: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    bars = ConsoleProgress(stream)
    try:
        yield RunControl(progress=bars, should_cancel=lambda: bool(requested))
    finally:
        bars.close()
        for sig, old in previous.items():
            signal.signal(sig, old)
