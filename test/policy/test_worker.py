"""The latest-only worker never queues: a slow handler always starts on the newest item."""

import threading
import time

from rynnvla_ros.inference.worker import LatestOnlyWorker


def test_a_slow_handler_gets_the_first_and_the_newest_items_only():
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def handler(item: int) -> None:
        started.set()
        release.wait(5)
        done.append(item)

    worker = LatestOnlyWorker(handler)
    try:
        assert worker.submit(0) is False
        assert started.wait(5) and worker.busy
        replaced = [worker.submit(i) for i in range(1, 10)]  # all arrive while item 0 is being handled
        assert replaced == [False] + [True] * 8
        release.set()
        assert worker.wait_idle(5)
        assert done == [0, 9]
        assert (worker.submitted, worker.dropped, worker.processed) == (10, 8, 2)
    finally:
        worker.close()


def test_errors_go_to_the_callback_and_the_worker_keeps_going():
    errors: list[tuple[int, str]] = []
    done: list[int] = []

    def handler(item: int) -> None:
        if item == 1:
            raise ValueError("bad item")
        done.append(item)

    worker = LatestOnlyWorker(handler, on_error=lambda item, exc: errors.append((item, str(exc))))
    try:
        for item in (1, 2):
            worker.submit(item)
            assert worker.wait_idle(5)
        assert errors == [(1, "bad item")] and done == [2] and worker.failed == 1
    finally:
        worker.close()


def test_close_drops_the_pending_item_and_stops_the_thread():
    release = threading.Event()
    done: list[int] = []
    worker = LatestOnlyWorker(lambda item: (release.wait(5), done.append(item)))
    worker.submit(1)
    deadline = time.monotonic() + 5
    while not worker.busy and time.monotonic() < deadline:
        time.sleep(0.001)
    worker.submit(2)
    threading.Timer(0.1, release.set).start()  # item 1 finishes after close() dropped item 2
    worker.close()
    assert done == [1] and not worker._thread.is_alive()
    assert worker.submit(3) is False
