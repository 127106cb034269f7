"""A function run once per argument tuple, its answer remembered, safe across threads."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Dict, Tuple, TypeVar

_T = TypeVar("_T")


def once_per_argument(fn: Callable[..., _T]) -> Callable[..., _T]:
    """``fn`` run once per argument tuple and remembered, like ``functools.lru_cache``, but a
    call made while the same one is under way in another thread waits for that one instead
    of running it again (:func:`lambda_compat.host.interpreters.warm_up` probes on a thread beside the
    caller)."""
    results: Dict[Tuple[Any, ...], _T] = {}
    locks: Dict[Tuple[Any, ...], threading.Lock] = {}
    guard = threading.Lock()

    @functools.wraps(fn)
    def wrapper(*args: Any) -> _T:
        with guard:
            lock = locks.setdefault(args, threading.Lock())
        with lock:
            if args not in results:
                results[args] = fn(*args)
            return results[args]

    wrapper.cache_clear = results.clear  # type: ignore[attr-defined]
    return wrapper
