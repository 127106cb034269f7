"""build/workers.py: the build's shared pool keeps the semantics of a pool per phase."""

from __future__ import annotations

import threading
import time

import pytest

from lambda_compat.build import workers


def test_results_in_order_and_every_call_finished_before_an_error_is_raised():
    finished = []

    def task(n):
        if n == 0:
            raise ValueError("first")
        time.sleep(0.2)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="first"):
        workers.map_all(task, [0, 1, 2, 3], jobs=2)
    # nothing left running behind the error (as `with ThreadPoolExecutor()` waits)
    assert sorted(finished) == [1, 2, 3]
    assert workers.map_all(lambda n: n * n, range(6), jobs=2) == [0, 1, 4, 9, 16, 25]


def test_the_threads_are_started_once_and_reused():
    seen = set()

    def where(_):
        seen.add(threading.get_ident())
        time.sleep(0.05)

    workers.map_all(where, range(8), jobs=3)
    first = set(seen)
    workers.map_all(where, range(8), jobs=3)
    assert seen == first and len(first) <= 3


def test_a_task_that_maps_again_runs_its_calls_itself_instead_of_waiting_for_ever():
    def outer(n):
        return sum(workers.map_all(lambda m: m + n, range(3), jobs=1))

    # one thread: an inner map waiting for the pool would never finish
    assert workers.map_all(outer, [10, 20], jobs=1) == [33, 63]
