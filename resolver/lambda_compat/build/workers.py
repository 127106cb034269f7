"""One thread pool for a build's short, independent tasks (storing, unpacking, verifying,
installing wheels), kept for the life of the process.

Each phase used to start its own pool, and starting a thread waits for it to run: with the
other threads busy unpacking, four pools' worth of thread starts cost a cold build about
half a second after pip had finished. The pool's threads are started once, by the first
phase that needs them (the wheels judged while pip resolves), and reused by the others.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable, Dict, Iterable, List, TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")

_PREFIX = "lc-work"
_POOLS: Dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def pool(jobs: int) -> ThreadPoolExecutor:
    """The process's pool of ``jobs`` threads (made on first use)."""
    jobs = max(1, jobs)
    with _LOCK:
        if jobs not in _POOLS:
            _POOLS[jobs] = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix=_PREFIX)
        return _POOLS[jobs]


def submit(jobs: int, fn: Callable[..., _R], *args: object) -> "Future[_R]":
    return pool(jobs).submit(fn, *args)


def map_all(fn: Callable[[_T], _R], items: Iterable[_T], jobs: int) -> List[_R]:
    """``fn`` over ``items`` on the pool, results in order. Every call finishes before this
    returns or raises (the first error, in order): as ``with ThreadPoolExecutor() as p:
    list(p.map(fn, items))``, so nothing is left running behind an error. Called from one of
    the pool's own threads, the calls run in that thread, one after the other (a task
    waiting for tasks queued behind it would wait for ever)."""
    items = list(items)
    if threading.current_thread().name.startswith(_PREFIX):
        return [fn(item) for item in items]
    futures = [submit(jobs, fn, item) for item in items]
    wait(futures)
    return [f.result() for f in futures]
