"""Batched metric updates: queued off the request path, applied before any reader sees them, each once."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from model_service.batching import APPLY_EVERY, QUEUE_BELOW_ROWS, BatchedInstruments, UpdateQueue

BUCKETS = (0.1, 1.0)


class Instruments:
    """A counter and a histogram fed through one queue, as the service's metric groups are."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("batched_requests", "Requests.", registry=None)
        self.duration = Histogram("batched_duration_seconds", "Duration.", buckets=BUCKETS, registry=None)
        self.queue = BatchedInstruments[float](self.registry, (self.requests, self.duration), self.apply)
        self.applied_lists: list[int] = []

    def apply(self, durations: list[float]) -> None:
        self.applied_lists.append(len(durations))
        for seconds in durations:
            self.requests.inc()
            self.duration.observe(seconds)

    def scraped(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def applied(self) -> float:
        """The counter's value as the instrument holds it, without a collection."""
        return self.requests._value.get()


def test_a_collection_sees_every_update_queued_before_it() -> None:
    instruments = Instruments()
    for seconds in (0.05, 0.5, 5.0):
        instruments.queue.record(seconds)
    assert instruments.applied() == 0, "updates under APPLY_EVERY wait in the queue"
    assert instruments.scraped("batched_requests_total") == 3
    assert instruments.scraped("batched_duration_seconds_bucket", le="0.1") == 1
    assert instruments.scraped("batched_duration_seconds_bucket", le="1.0") == 2
    assert instruments.scraped("batched_duration_seconds_count") == 3
    assert instruments.scraped("batched_duration_seconds_sum") == 5.55
    assert instruments.scraped("batched_requests_total") == 3, "a second collection applies nothing twice"


def test_the_queue_applies_itself_once_full_so_it_stays_bounded() -> None:
    instruments = Instruments()
    for _ in range(APPLY_EVERY - 1):
        instruments.queue.record(0.01)
    assert instruments.applied() == 0
    instruments.queue.record(0.01)
    assert instruments.applied() == APPLY_EVERY
    assert instruments.applied_lists == [APPLY_EVERY], "applied in one list, in bulk"
    instruments.queue.record(0.01)
    assert instruments.scraped("batched_requests_total") == APPLY_EVERY + 1


def test_a_small_batch_is_queued_and_a_large_one_applied_at_once() -> None:
    applied: list[list[str]] = []
    queue = UpdateQueue[str](applied.append)
    queue.record_rows("small", QUEUE_BELOW_ROWS - 1)
    assert applied == []
    queue.record_rows("large", QUEUE_BELOW_ROWS)
    assert applied == [["large"]]
    queue.apply_queued()
    assert applied == [["large"], ["small"]]


def test_the_collector_describes_the_instruments_it_exposes() -> None:
    instruments = Instruments()
    names = {metric.name for metric in instruments.queue.describe()}
    assert names == {"batched_requests", "batched_duration_seconds"}
    # Registered by their names: a second instrument of the same name is refused, as for registered ones.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("batched_requests", "Again.", registry=instruments.registry)


def test_updates_from_several_threads_are_each_applied_once() -> None:
    instruments = Instruments()
    threads, per_thread = 4, 5_000
    done = threading.Event()
    seen: list[float] = []

    def serve() -> None:
        for _ in range(per_thread):
            instruments.queue.record(0.5)

    def scrape() -> None:
        while not done.is_set():
            seen.append(instruments.scraped("batched_requests_total") or 0.0)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=serve) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    scraper.join()
    total = threads * per_thread
    assert instruments.scraped("batched_requests_total") == total
    assert instruments.scraped("batched_duration_seconds_bucket", le="1.0") == total
    assert instruments.scraped("batched_duration_seconds_sum") == 0.5 * total
    assert seen == sorted(seen), "a counter read while requests are served never goes back"
    assert all(value <= total for value in seen)
