"""Traffic for the sample model service, from its own generator (``model_service.loadgen``), in a thread."""

from __future__ import annotations

import dataclasses
import threading
import time

from model_service.loadgen import DriftSpec, LoadConfig, LoadReport, run

from tests.processes import poll

HEALTHY = LoadConfig(rate=20, duration=2.0, batch_size=5, feedback_ratio=0.3, wait_ready_seconds=0, seed=1)
"""Undrifted traffic with ground truth for a share of predictions: 100 rows a second drawn from the held-out
data, so every drift window of the suite holds well over the contract's minimum volume."""


class Traffic:
    """The sample's traffic generator, run in two-second rounds in a thread until stopped.

    Each round takes the current profile and the current URL (a rolling update moves the service), so a new
    profile starts within one round; the time its first round starts is recorded as the profile's onset (the
    generator then builds its rows for about 0.1 s before the first request, so an onset is never late).
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._profile = HEALTHY
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.onsets: dict[int, float] = {}
        self._generation = 0
        self.rounds = 0
        self.reports: list[LoadReport] = []
        """The last rounds' reports (statuses by kind), newest last."""
        self.errors: list[str] = []

    def point_at(self, url: str) -> None:
        with self._lock:
            self._url = url

    def set_profile(self, profile: LoadConfig) -> int:
        """Switch to ``profile``; returns the key ``onset`` takes."""
        with self._lock:
            self._profile = profile
            self._generation += 1
            return self._generation

    def onset(self, key: int, timeout: float = 10) -> float:
        """Wall-clock time the first round of a profile began."""
        result = poll("traffic profile started", lambda: self.onsets.get(key), timeout=timeout, interval=0.05)
        assert isinstance(result, float)
        return result

    def wait_next_round(self, timeout: float = 30) -> None:
        """Until a round that started after this call has begun: the ones before it have ended."""
        target = self.rounds + 1
        poll("next traffic round", lambda: self.rounds >= target, timeout=timeout, interval=0.05)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                profile, url, generation = self._profile, self._url, self._generation
            self.onsets.setdefault(generation, time.time())
            try:
                # A new seed per round: the same seed would send the same rows every round, a sample of a few
                # hundred rows whose sampling noise alone looks like drift.
                self.rounds += 1
                report = run(dataclasses.replace(profile, url=url, seed=profile.seed * 100_003 + self.rounds))
            except Exception as error:  # a round must never kill the thread; the error is kept for the report
                self.errors.append(repr(error))
                self._stop.wait(0.5)
                continue
            self.reports = [*self.reports[-50:], report]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def drifted(feature: str, sigmas: float) -> LoadConfig:
    """Healthy traffic with one feature shifted by ``sigmas`` training standard deviations, at once."""
    return dataclasses.replace(HEALTHY, drift=DriftSpec(shift={feature: sigmas}, onset="sudden"))


def relabelled(true_class: str, reported: str) -> LoadConfig:
    """Healthy traffic whose feedback reports ``reported`` for the rows of ``true_class``: most of the feedback that
    names ``reported`` then names rows the model gave another class, and its recall falls."""
    return dataclasses.replace(HEALTHY, feedback_relabel={true_class: reported})


def scored(accuracy: float) -> LoadConfig:
    """Healthy traffic whose feedback makes the accuracy Prometheus computes converge to ``accuracy``, its errors
    spread over every class."""
    return dataclasses.replace(HEALTHY, feedback_accuracy=accuracy)


def out_of_range(feature: str, share: float) -> LoadConfig:
    """Healthy traffic with ``share`` of the records' ``feature`` outside its training range, at once."""
    return dataclasses.replace(HEALTHY, out_of_range={feature: share})
