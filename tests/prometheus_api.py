"""The few calls of Prometheus' and Alertmanager's HTTP APIs the suites assert on, wherever the servers run."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


class PrometheusApi:
    """The few calls of Prometheus' HTTP API the suite asserts on (Thanos Query's too: ``query_params`` then
    carries its ``dedup`` choice into every query)."""

    def __init__(self, base_url: str, query_params: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=10)
        self.query_params = dict(query_params or {})

    def _data(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params={**self.query_params, **params})
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query; ``at`` is the evaluation time (seconds, millisecond precision)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._data("/api/v1/query", **params)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query: each series with its ``values`` (``[time, value]`` pairs)."""
        data = self._data("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:.3f}")
        assert data["resultType"] == "matrix", data
        return list(data["result"])

    def samples(self, selector: str, start: float, end: float) -> dict[frozenset[tuple[str, str]], list[float]]:
        """The raw sample timestamps of ``selector``'s series in (start, end], by label set."""
        data = self._data("/api/v1/query", query=f"{selector}[{int((end - start) * 1000)}ms]", time=f"{end:.3f}")
        assert data["resultType"] == "matrix", data
        return {frozenset(s["metric"].items()): [float(t) for t, _ in s["values"]] for s in data["result"]}

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The value of a query that returns at most one series."""
        result = self.query(expr, at)
        assert len(result) <= 1, f"{expr}: {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        return list(self._data("/api/v1/alerts")["alerts"])

    def reload(self) -> None:
        """Reload the configuration (``--web.enable-lifecycle``); returns once Prometheus has applied it."""
        response = self.client.post("/-/reload")
        assert response.status_code == 200, f"reload failed: {response.status_code} {response.text}"

    def rules(self) -> list[dict[str, Any]]:
        return list(self._data("/api/v1/rules")["groups"])

    def targets(self) -> dict[str, Any]:
        return dict(self._data("/api/v1/targets"))

    def label_values(self, label: str, match: str) -> list[str]:
        return list(self._data(f"/api/v1/label/{label}/values", **{"match[]": match}))

    def own_metric(self, name: str, **labels: str) -> float:
        """The sum of the server's own ``name`` samples on its ``/metrics`` matching ``labels`` (its own metrics,
        which no scrape job stores here)."""
        response = self.client.get("/metrics")
        response.raise_for_status()
        return sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def close(self) -> None:
        self.client.close()


class AlertmanagerApi:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=10)

    def alerts(self) -> list[dict[str, Any]]:
        response = self.client.get("/api/v2/alerts")
        response.raise_for_status()
        return list(response.json())

    def close(self) -> None:
        self.client.close()


def alert_states(alerts: list[dict[str, Any]], name: str) -> list[str]:
    return [a["state"] for a in alerts if a["labels"].get("alertname") == name]
