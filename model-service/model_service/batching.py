"""Metric updates taken off a request's path: queued as the request is answered, applied in bulk.

Why: a served ``/predict`` reaches its metrics between the HTTP parsing, the validation and the model, which
push the metrics' objects out of the CPU's caches, so an update made there pays for cache misses. Measured
in process, the interface metrics (a request counter and three histograms) cost 7 µs a request that way
against 3 µs when the updates follow one another, and a single record's drift bins 8 µs against 2 µs.
Queuing costs one small tuple appended to a deque; applying a few hundred at once keeps the metrics in
cache, and lets the drift bins and the input ranges be counted for the whole queue in one vectorised numpy
pass.

Readers apply the queue first: a collector built on :class:`BatchedInstruments` does so before every
collection, so a scrape (or any other reader of the registry) always sees every request answered before it.
Nothing is lost that an unbatched counter would have kept: a process that dies loses its counters either
way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

Update = TypeVar("Update")

APPLY_EVERY = 256
"""Queued updates that make the request path apply them: bounds the queue (a few kB) while keeping each bulk
application long enough to stay in cache."""


QUEUE_BELOW_ROWS = 4
"""Batches of records with fewer rows are queued by :meth:`UpdateQueue.record_rows`; larger ones are applied
at once, their rows already sharing numpy's per-call overhead."""


class UpdateQueue(Generic[Update]):
    """Updates queued one per request and handed to ``apply`` as a list, in the order they came.

    Safe from several threads: ``deque.append`` and ``deque.popleft`` are atomic, so every update is taken
    exactly once whoever applies the queue; ``apply`` must be safe to run from two threads at once.
    """

    def __init__(self, apply: Callable[[list[Update]], None]) -> None:
        self._apply = apply
        self._queue: deque[Update] = deque()

    def record(self, update: Update) -> None:
        """Queue one update; apply the queue once it holds ``APPLY_EVERY``."""
        queue = self._queue
        queue.append(update)
        if len(queue) >= APPLY_EVERY:
            self.apply_queued()

    def record_rows(self, update: Update, rows: int) -> None:
        """Queue the update of a batch of ``rows`` records if it is small (``QUEUE_BELOW_ROWS``), else apply
        it at once: the queue is for what costs more counted alone than counted with others."""
        if rows < QUEUE_BELOW_ROWS:
            self.record(update)
        else:
            self._apply([update])

    def apply_queued(self) -> None:
        """Apply every update queued so far."""
        take = self._queue.popleft
        updates = []
        while True:
            try:
                updates.append(take())
            except IndexError:
                break
        if updates:
            self._apply(updates)


class BatchedInstruments(UpdateQueue[Update]):
    """prometheus_client instruments, created unregistered, whose updates are queued; exposed through this
    collector (a :class:`prometheus_client.registry.Collector` by its methods), which applies the queue before
    every collection."""

    def __init__(
        self,
        registry: CollectorRegistry,
        instruments: Sequence[MetricWrapperBase],
        apply: Callable[[list[Update]], None],
    ) -> None:
        super().__init__(apply)
        self._instruments = tuple(instruments)
        registry.register(self)

    def describe(self) -> Iterator[Metric]:
        for instrument in self._instruments:
            yield from instrument.describe()

    def collect(self) -> Iterator[Metric]:
        self.apply_queued()
        for instrument in self._instruments:
            yield from instrument.collect()
