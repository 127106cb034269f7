"""What the CLI shows while it works, on rich (the library only sends events; see ui.py).

One ``ProgressUI`` for build, check and package:

* on a terminal, a live table: per target its phase, the distribution being resolved,
  downloaded or built, and how long that step has taken; finished targets and missing
  distributions stay as lines above it;
* off a terminal (CI logs), one line per phase change, each with the run's elapsed time, and
  a "still ..." line every ``heartbeat`` seconds while a step goes on, so a long source build
  never looks like a hang;
* a warning when a large native source build starts (it may take minutes).

Colours follow rich: ``NO_COLOR`` turns them off, ``FORCE_COLOR`` on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, TextIO

from rich.color import ColorSystem
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.style import Style as RichStyle
from rich.table import Table

#: An sdist at least this large is "a large native build" worth a warning.
LARGE_SDIST_BYTES = 4 << 20


def console_for(stream: TextIO) -> Console:
    """A rich console on ``stream``: rich decides on colour and live display (a terminal,
    ``NO_COLOR``, ``FORCE_COLOR``, ``TERM=dumb``)."""
    return Console(file=stream, highlight=False, soft_wrap=True)


def use_colour(stream: TextIO) -> bool:
    """Whether a report written to ``stream`` gets colours (rich's rules)."""
    console = console_for(stream)
    return console.is_terminal and not console.no_color and console.color_system is not None


class Style:
    """Colours for the text reports (rich style names), or plain text when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not style:
            return text
        return RichStyle.parse(style).render(text, color_system=ColorSystem.STANDARD)

    def ok(self, text: str) -> str:
        return self("✓ " + text if self.enabled else "ok   " + text, "green")

    def bad(self, text: str) -> str:
        return self("✗ " + text if self.enabled else "FAIL " + text, "red")

    def warning(self, text: str = "warning") -> str:
        return self(text, "yellow")

    def dim(self, text: str) -> str:
        return self(text, "dim")

    def bold(self, text: str) -> str:
        return self(text, "bold")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


@dataclass
class _Step:
    phase: str
    detail: str = ""
    started: float = 0.0
    last_said: float = 0.0


@dataclass
class _State:
    steps: Dict[str, _Step] = field(default_factory=dict)   # target -> its current step


_BUILD_WORDS = {"built": "building", "built-no-compiler": "building without a compiler",
                "registry": "checking the registry for"}


class ProgressUI:
    """Renders the library's progress events (see the module docstring)."""

    def __init__(self, stream: TextIO, verbose: bool = False, *,
                 console: Optional[Console] = None, live: Optional[bool] = None,
                 clock: Callable[[], float] = time.monotonic, heartbeat: float = 60.0) -> None:
        self.console = console or console_for(stream)
        self.live = self.console.is_terminal if live is None else live
        self.verbose = verbose
        self.clock = clock
        self.heartbeat = heartbeat
        self.started = clock()
        self._state = _State()
        self._lock = threading.RLock()
        self._live: Optional[Live] = None
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> "ProgressUI":
        if self.live:
            self._live = Live(self._table(), console=self.console, transient=True,
                              refresh_per_second=4, get_renderable=self._table)
            self._live.start()
        elif self.heartbeat > 0:
            self._ticker = threading.Thread(target=self._tick, daemon=True,
                                            name="lambda-compat-progress")
            self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._ticker is not None:
            self._ticker.join(timeout=1)

    # -- events ------------------------------------------------------------------------
    def event(self, kind: str, /, **data: Any) -> None:
        target = str(data.get("target") or "")
        handler = getattr(self, "_on_" + kind.replace("-", "_"), None)
        if handler is not None:
            with self._lock:
                handler(target, data)

    def _on_start(self, target: str, data: dict) -> None:
        if target not in self._state.steps:        # a build of its own, not a check's
            self._say(f"building {data['requirements']} for {data['target']}", bold=True)
        self._set(target, "resolving")

    def _on_pip_collecting(self, target: str, data: dict) -> None:
        self._set(target, "resolving", data.get("what", ""), quiet=True)

    def _on_pip_downloading(self, target: str, data: dict) -> None:
        self._set(target, "downloading", data.get("what", ""), quiet=True)

    def _on_resolved(self, target: str, data: dict) -> None:
        hits = data.get("cache_hits", 0)
        self._set(target, "verifying",
                  f"{data['count']} distributions resolved ({hits} files from cache)")

    def _on_dist_start(self, target: str, data: dict) -> None:
        phase = data.get("phase")
        if phase == "wheel":
            return
        what = f"{data['name']} {data.get('version') or ''}".strip()
        how = _BUILD_WORDS.get(str(phase), str(phase))
        detail = what + (f" with {data['interpreter']}" if data.get("interpreter") else "")
        self._set(target, how, detail)
        size = data.get("size") or 0
        if phase == "built" and size >= LARGE_SDIST_BYTES:
            self._say(f"{self._prefix(target)}{what}: a {size / (1 << 20):.0f} MiB sdist, a "
                      f"large native build; this may take several minutes", style="yellow")

    def _on_dist_done(self, target: str, data: dict) -> None:
        if data.get("phase") == "missing":
            self._say(f"{self._prefix(target)}{data['name']} {data.get('version') or ''} "
                      f"missing", style="red")
        elif data.get("phase") != "wheel" and (self.verbose or not self.live):
            self._say(f"{self._prefix(target)}{data['name']} {data.get('version') or ''} "
                      f"{data['phase']}", style="green")

    def _on_sdist_build_start(self, target: str, data: dict) -> None:
        how = "building" if data.get("compiler", True) else "building without a compiler"
        self._set(target, how, f"{data.get('sdist', '?')} with {data.get('interpreter', '?')}")

    def _on_sdist_build_done(self, target: str, data: dict) -> None:
        ok = bool(data.get("ok"))
        if ok and self.live and not self.verbose:
            return
        self._say(f"{self._prefix(target)}{'built' if ok else 'build failed:'} "
                  f"{data.get('sdist', '?')} in {_duration(data.get('seconds', 0))}",
                  style="" if ok else "red")

    def _on_install_start(self, target: str, data: dict) -> None:
        self._set(target, "installing", f"{data['count']} wheels")

    def _on_done(self, target: str, data: dict) -> None:
        self._end(target)

    def _on_check_target_start(self, target: str, data: dict) -> None:
        self._set(target, "building" if data.get("phase") == "build" else "checking")

    def _on_check_import_start(self, target: str, data: dict) -> None:
        self._set(target, "importing", f"{data.get('modules')} modules ({data.get('backend')})")

    def _on_check_target_done(self, target: str, data: dict) -> None:
        self._end(target)
        ok = data.get("verdict") == "compatible"
        self._say(f"{target}: {data.get('verdict')} (proof: {data.get('proof')}, "
                  f"{_duration(data.get('seconds', 0))})", style="green" if ok else "red")

    def _on_warning(self, target: str, data: dict) -> None:
        # always shown, live or not: these are the ones that must not be missed
        self._say(f"WARNING: {self._prefix(target)}{data['message']}", style="bold red")

    def _on_standin_build_start(self, target: str, data: dict) -> None:
        self._set(target, "building stand-in root", f"{data.get('name')} ({data.get('kind')})")

    def _on_standin_build_done(self, target: str, data: dict) -> None:
        self._say(f"{self._prefix(target)}stand-in root {data.get('name')} built in "
                  f"{_duration(data.get('seconds', 0))}")

    def _on_package_start(self, target: str, data: dict) -> None:
        self._say(f"packaging {data['project']} for {data['target']}", bold=True)

    def _on_package_lock(self, target: str, data: dict) -> None:
        self._say(f"{data['kind']}: {data['packages']} packages for the target "
                  f"({data['excluded_dev']} development-only left out)")

    def _on_package_verify_start(self, target: str, data: dict) -> None:
        self._set(target, "verifying", "the bundle")

    def _on_package_handler_start(self, target: str, data: dict) -> None:
        self._set(target, "importing", f"{data['handler']} ({data['backend']})")

    def _on_package_zip_start(self, target: str, data: dict) -> None:
        self._set(target, "compressing", data["name"])

    def _on_package_done(self, target: str, data: dict) -> None:
        self._end(target)

    # -- state and output --------------------------------------------------------------
    def _prefix(self, target: str) -> str:
        return f"{target}: " if target else ""

    def _set(self, target: str, phase: str, detail: str = "", quiet: bool = False) -> None:
        now = self.clock()
        step = self._state.steps.get(target)
        if step is not None and step.phase == phase and quiet:
            step.detail = detail or step.detail
            return
        if step is not None and step.phase == phase and step.detail == detail:
            return
        self._state.steps[target] = _Step(phase, detail, now, now)
        if not self.live or self.verbose:
            self._say(f"{self._prefix(target)}{phase}" + (f" {detail}" if detail else ""))

    def _end(self, target: str) -> None:
        self._state.steps.pop(target, None)

    def _say(self, text: str, *, style: str = "", bold: bool = False) -> None:
        stamp = "" if self.live else f"[{_duration(self.clock() - self.started):>7}] "
        markup = escape(text)
        if style or bold:
            markup = f"[{style or 'bold'}]{markup}[/]"
        self.console.print(stamp + markup, highlight=False, soft_wrap=True)

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 2))
        now = self.clock()
        with self._lock:
            for target, step in sorted(self._state.steps.items()):
                table.add_row(escape(target or "lambda-compat"), f"[cyan]{escape(step.phase)}[/]",
                              escape(step.detail), _duration(now - step.started))
            table.add_row("", "", "", f"[dim]{_duration(now - self.started)} in all[/]")
        return table

    def _tick(self) -> None:
        while not self._stop.wait(min(self.heartbeat, 5.0)):
            self.tick()

    def tick(self) -> None:
        """Off a terminal: a "still ..." line for every step older than ``heartbeat``."""
        now = self.clock()
        with self._lock:
            for target, step in sorted(self._state.steps.items()):
                if now - step.last_said >= self.heartbeat:
                    step.last_said = now
                    self._say(f"{self._prefix(target)}still {step.phase}"
                              + (f" {step.detail}" if step.detail else "")
                              + f" ({_duration(now - step.started)})")


def table(rows: List[List[str]]) -> str:
    """Left-aligned columns two spaces apart, trailing spaces trimmed."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
