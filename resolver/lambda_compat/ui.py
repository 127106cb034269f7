"""Progress reporting. The library never prints: it sends events to a ``UI``.

An event is a name plus keyword data. ``NullUI`` drops them, ``RecordingUI`` keeps them
(tests), the CLI's terminal UI renders them.
"""

from __future__ import annotations

import threading
from typing import Any, List, Protocol, Tuple


class UI(Protocol):
    def event(self, kind: str, /, **data: Any) -> None: ...


class NullUI:
    def event(self, kind: str, /, **data: Any) -> None:
        pass


class RecordingUI:
    def __init__(self) -> None:
        self.events: List[Tuple[str, dict]] = []
        self._lock = threading.Lock()

    def event(self, kind: str, /, **data: Any) -> None:
        with self._lock:
            self.events.append((kind, data))

    def names(self) -> List[str]:
        return [n for n, _ in self.events]
