"""What the benchmark scripts share: their section of docs/benchmarks.md and the medians."""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path
from typing import List


def fmt(samples: List[float]) -> str:
    """``median (min–max)`` in seconds, one decimal."""
    return f"{statistics.median(samples):.1f} ({min(samples):.1f}–{max(samples):.1f})"


def replace_section(doc: str, section: str) -> str:
    """Replace the section of ``doc`` titled like ``section``'s first line (up to the next
    ``#``/``##`` heading outside a code fence), or append it; the rest stays byte for byte."""
    title = section.splitlines()[0].rstrip()
    lines = doc.splitlines(keepends=True)
    start = end = None
    fence = False
    for i, line in enumerate(lines):
        text = line.rstrip("\n")
        if text.lstrip().startswith(("```", "~~~")):
            fence = not fence
            continue
        if fence:
            continue
        if start is None:
            if text.rstrip() == title:
                start = i
        elif re.match(r"^#{1,2} ", text):
            end = i
            break
    if start is None:
        return doc.rstrip("\n") + "\n\n" + section
    tail = "".join(lines[end:]) if end is not None else ""
    return "".join(lines[:start]) + section.rstrip("\n") + "\n" + ("\n" + tail if tail else "")


def write_section(path: Path, section: str) -> None:
    """Replace (or append) ``section`` in the Markdown file ``path``, atomically."""
    if path.exists() and not path.is_file():
        # never os.replace() over a device or FIFO (e.g. /dev/null): that would delete it
        raise SystemExit(f"{path} is not a regular file; --output takes a Markdown file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(replace_section(old, section), encoding="utf-8")
    os.replace(tmp, path)
