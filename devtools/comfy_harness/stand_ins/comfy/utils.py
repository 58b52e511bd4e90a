"""Stand-in for ``comfy.utils``: ``ProgressBar`` records every update so tests can assert on it."""
from __future__ import annotations

#: (total, value) of every update made by any ProgressBar, in order; tests may clear it.
PROGRESS_EVENTS: list[tuple[int, int]] = []


class ProgressBar:
    def __init__(self, total: int, node_id=None):
        self.total = total
        self.current = 0
        self.node_id = node_id

    def update_absolute(self, value: int, total: int = None, preview=None) -> None:
        if total is not None:
            self.total = total
        self.current = min(value, self.total)
        PROGRESS_EVENTS.append((self.total, self.current))

    def update(self, value: int) -> None:
        self.update_absolute(self.current + value)
