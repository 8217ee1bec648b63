"""Progress events from a running flow to whoever started it in this process (the CLI).

Flows emit events from the flow body (never from tasks, which may run elsewhere); with
no listener - a served deployment, a worker - emitting does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Progress:
    """``phase`` is "plan", "ingest" or "score"; ``done``/``total`` count units of it."""

    phase: str
    done: int
    total: int
    day: date | None = None
    events: int = 0
    note: str = ""


Listener = Callable[[Progress], None]
_listeners: list[Listener] = []


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def emit(event: Progress) -> None:
    for listener in list(_listeners):
        listener(event)
