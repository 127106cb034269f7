"""Progress reporting. The library never prints: it sends events to a ``UI``.

An event is a name plus keyword data. ``NullUI`` drops them, ``RecordingUI`` keeps them
(tests), the CLI's terminal UI renders them.
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional, Protocol, Tuple


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


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def sdist_build_text(kind: str, data: dict) -> Optional[str]:
    """One line for a source-build event (``sdist-build-start/-progress/-done``), else None.

    The text names the sdist and, once it runs, its elapsed time; renderers decide where
    it goes (the CLIs print the periodic ``-progress`` lines even when not on a terminal, so a
    build of many minutes is never silent).
    """
    sdist = data.get("sdist", "?")
    if kind == "sdist-build-start":
        how = "" if data.get("compiler", True) else " without a compiler"
        return f"building {sdist}{how} with {data.get('interpreter', '?')}"
    if kind == "sdist-build-progress":
        return f"still building {sdist}: {_duration(data.get('seconds', 0))} so far"
    if kind == "sdist-build-done":
        verb = "built" if data.get("ok") else "build failed:"
        return f"{verb} {sdist} in {_duration(data.get('seconds', 0))}"
    return None
