"""Byte counts in Lambda's units, for messages: its "MB" limits are MiB (250 MB = 262,144,000
bytes). Shared by every layer (standard library only)."""

from __future__ import annotations


def mib(n: int) -> str:
    """Always MiB, one decimal: ``mib(52_428_800)`` -> ``"50.0 MiB"``."""
    return f"{n / 1048576:.1f} MiB"


def kib_or_mib(n: int) -> str:
    """KiB below one MiB, else MiB, one decimal: ``"512.0 KiB"``, ``"1.5 MiB"``."""
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"
