"""SLO rules: Sloth-compatible names, computed burn-rate factors, and promtool runs of every burn-rate alert.

The expected firing times are not read from the rules: a small model of Prometheus 3's ``increase()``
(tests/promsim.py) applies the SRE Workbook's table to the same input series, and promtool must agree with
it at the same evaluation step, silent one step before.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from model_service import contract

from components.monitors.config import ModelMonitorsConfig
from components.monitors.model_slos import AVAILABILITY_ALERT, LATENCY_ALERT
from components.monitors.rule_model import AlertingRule, RecordingRule, RuleGroup, TimeScale, selector, to_spec
from components.monitors.slo_rules import WORKBOOK_WINDOWS, check_objective, is_period_group, threshold
from tests.monitor_rules import DAY, HOUR, MINUTE, MODEL, NAMESPACE, groups_for, monitors_config
from tests.promsim import Series, increase, summed_increase
from tests.rule_testing import check_rules, expected_alert, run_rule_tests, write_rules

WORKBOOK_30D = (  # SRE Workbook table 5-8, as (long, short, factor, severity)
    (HOUR, 5 * MINUTE, 14.4, "page"),
    (6 * HOUR, 30 * MINUTE, 6.0, "page"),
    (DAY, 2 * HOUR, 3.0, "ticket"),
    (3 * DAY, 6 * HOUR, 1.0, "ticket"),
)
WINDOW_NAMES = {5 * MINUTE: "5m", 30 * MINUTE: "30m", HOUR: "1h", 2 * HOUR: "2h", 6 * HOUR: "6h", DAY: "1d",
                3 * DAY: "3d"}


def slo_groups(config: ModelMonitorsConfig, slo: str) -> tuple[RuleGroup, ...]:
    return tuple(g for g in groups_for(config) if g.name.startswith("sloth-slo-") and g.name.endswith(slo))


def alert_rule(groups: tuple[RuleGroup, ...], severity: str) -> AlertingRule:
    return next(a for g in groups for a in g.alerts if a.labels["sloth_severity"] == severity)


# ---------------------------------------------------------------------------------------------------------
# Names, factors and numbers
# ---------------------------------------------------------------------------------------------------------


def test_burn_rate_factors_are_computed_from_the_windows_not_typed():
    assert [float(w.factor("30d")) for w in WORKBOOK_WINDOWS] == [f for _, _, f, _ in WORKBOOK_30D]
    # The same windows over 28 days: 0.02 * 672h / 1h and so on, rounded to four decimals.
    assert [w.factor("28d") for w in WORKBOOK_WINDOWS] == [Decimal(x) for x in ("13.44", "5.6", "2.8", "0.9333")]
    assert [(w.long, w.short, w.severity) for w in WORKBOOK_WINDOWS] == [
        (WINDOW_NAMES[long], WINDOW_NAMES[short], severity) for long, short, _, severity in WORKBOOK_30D
    ]


def test_no_float_noise_reaches_the_rules():
    config = monitors_config(availabilityObjectivePercent=99.9, latencySlos=[
        {"thresholdSeconds": 0.1, "objectivePercent": 99.0}, {"thresholdSeconds": 0.3, "objectivePercent": 97.7}])
    text = str(to_spec(groups_for(config)))
    assert "> 0.0144" in text and "> 0.006)" in text  # 14.4 and 6 times the 0.001 budget of 99.9%
    assert "vector(0.999)" in text and "vector(0.001)" in text
    assert "> 0.3312" in text  # 14.4 * 0.023, which float arithmetic makes 0.33119999999999994
    noisy = re.findall(r"\d\.\d*(?:0{6,}|9{6,})\d", text)
    assert not noisy, f"float noise in the rendered rules: {noisy[:5]}"


def test_sloth_names_labels_and_groups():
    groups = slo_groups(monitors_config(), "requests-availability")
    sli, meta, period, alerts = groups
    assert [g.name for g in groups] == [
        f"sloth-slo-{kind}-{MODEL}-requests-availability"
        for kind in ("sli-recordings", "meta-recordings", "period-recordings", "alerts")
    ]
    assert [r.record for r in sli.rules if isinstance(r, RecordingRule)] == [
        f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
    ]
    assert {r.record for r in meta.rules if isinstance(r, RecordingRule)} == {
        "slo:objective:ratio", "slo:error_budget:ratio", "slo:current_burn_rate:ratio", "slo:time_period:days",
        "sloth_slo_info",
    }
    # Everything that reads a whole period, in evaluation order, each saying which store's data it read.
    assert [r.record for r in period.rules if isinstance(r, RecordingRule)] == [
        "slo:sli_error:ratio_rate30d", "slo:period_burn_rate:ratio", "slo:period_error_budget_remaining:ratio"]
    assert {r.labels["slo_store"] for r in period.rules if isinstance(r, RecordingRule)} == {"prometheus"}
    assert [is_period_group(g) for g in groups] == [False, False, True, False]
    for rule in (*sli.rules, period.rules[0]):
        assert isinstance(rule, RecordingRule)
        assert rule.labels["sloth_id"] == f"{MODEL}-requests-availability"
        assert rule.labels["sloth_service"] == MODEL and rule.labels["sloth_slo"] == "requests-availability"
        assert rule.labels["sloth_window"] == rule.record.removeprefix("slo:sli_error:ratio_rate")
    assert [(a.alert, a.severity.value, a.labels["sloth_severity"]) for a in alerts.alerts] == [
        (AVAILABILITY_ALERT, "critical", "page"), (AVAILABILITY_ALERT, "warning", "ticket")]
    latency = slo_groups(monitors_config(), "requests-latency-100ms")
    assert {a.alert for a in latency[3].alerts} == {LATENCY_ALERT}
    assert f'le="{contract.format_le(0.1)}"' in latency[0].rules[0].expr  # type: ignore[union-attr]


def test_time_scale_renders_durations_and_keeps_names():
    fast = groups_for(monitors_config(timeScale=0.01))
    normal = groups_for(monitors_config())
    assert [g.name for g in fast] == [g.name for g in normal]
    for fast_group, group in zip(fast, normal, strict=True):
        assert [getattr(r, "record", None) or getattr(r, "alert", None) for r in fast_group.rules] == [
            getattr(r, "record", None) or getattr(r, "alert", None) for r in group.rules
        ]
        assert (group.interval, fast_group.interval) == ("30s", "300ms")
    sli = next(g for g in fast if g.name.startswith("sloth-slo-sli-recordings-"))
    ranges = [re.findall(r"\[([^\]]+)\]", r.expr) for r in sli.rules]
    assert [sorted(set(r)) for r in ranges] == [
        ["3s"], ["18s"], ["36s"], ["1m12s"], ["3m36s"], ["14m24s"], ["43m12s"]
    ]
    assert [r.labels["sloth_window"] for r in sli.rules] == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
    period = next(g for g in fast if is_period_group(g))
    assert sorted(set(re.findall(r"\[([^\]]+)\]", period.rules[0].expr))) == ["7h12m"]  # 30d
    drift = next(g for g in fast if g.name.endswith("-drift"))
    assert {a.for_ for a in drift.alerts} == {"6s"}  # 10m


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (90.0, "objective 90.0% leaves an error budget of 10%, so the 14.4x burn-rate alert over 1h would need "
               "more than 100% errors"),
        (100.0, "strictly between 0 and 100"),
    ],
)
def test_an_objective_no_alert_could_reach_is_refused(objective: float, message: str):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_objective(objective, "30d")


def test_rendered_rules_pass_promtool_check(tmp_path: Path):
    for scale in (1.0, 0.01):
        directory = tmp_path / str(scale)
        directory.mkdir()
        out = check_rules(write_rules(directory, groups_for(monitors_config(timeScale=scale))))
        assert "SUCCESS" in out


# ---------------------------------------------------------------------------------------------------------
# Burn-rate alerts under promtool
# ---------------------------------------------------------------------------------------------------------

REQUESTS_PER_MINUTE = 1000


@dataclass(frozen=True)
class Scenario:
    """Per-minute /predict traffic: a sample every (scaled) minute, counts as prometheus-client exports them."""

    minutes: int
    error_ratio: Callable[[int], float]
    """Share of the requests of minute ``i`` (between samples ``i - 1`` and ``i``) answered 500."""
    slow_ratio: Callable[[int], float] = lambda _: 0.0
    """Share of the requests of minute ``i`` slower than 0.1 s (and than 0.025 s)."""

    def counters(self) -> tuple[list[float], list[float | None], list[float], list[float]]:
        """Cumulative ``code="200"``, ``code="500"`` (absent until the first error), fast (le 0.025 and le
        0.1, equal here) and all-duration counts per sample."""
        ok, errors, fast, count = [0.0], [None], [0.0], [0.0]
        error_total = 0.0
        for minute in range(1, self.minutes + 1):
            failed = round(REQUESTS_PER_MINUTE * self.error_ratio(minute))
            slow = round(REQUESTS_PER_MINUTE * self.slow_ratio(minute))
            error_total += failed
            ok.append(ok[-1] + REQUESTS_PER_MINUTE - failed)
            errors.append(error_total if error_total > 0 else None)
            fast.append(fast[-1] + REQUESTS_PER_MINUTE - slow)
            count.append(count[-1] + REQUESTS_PER_MINUTE)
        return ok, errors, fast, count


def input_series(scenario: Scenario) -> list[dict[str, str]]:
    from tests.rule_testing import series_values

    ok, errors, fast, count = scenario.counters()
    target = {"namespace": NAMESPACE, "job": MODEL, "pod": f"{MODEL}-0", "instance": "10.0.0.1:8080"}
    route = {"route": contract.ROUTE_PREDICT}
    requests = contract.HTTP_REQUESTS.name
    duration = contract.HTTP_REQUEST_DURATION.name
    return [
        {"series": selector(requests, **target, **route, method="POST", code="200"), "values": series_values(ok)},
        {"series": selector(requests, **target, **route, method="POST", code="500"), "values": series_values(errors)},
        *(
            {"series": selector(f"{duration}_bucket", **target, **route, le=contract.format_le(le)),
             "values": series_values(fast)}
            for le in contract.DEFAULT_LATENCY_SLO_THRESHOLDS_SECONDS
        ),
        {"series": selector(f"{duration}_count", **target, **route), "values": series_values(count)},
    ]


def sli_function(scenario: Scenario, kind: str, scale: float) -> Callable[[int, int], float | None]:
    """The SLI recording, ``(bad or 0) / (total > 0)`` over a window, at a time (both in scaled ms)."""
    ok, errors, fast, count = scenario.counters()
    interval = round(MINUTE * scale)
    ok_series, error_series = Series(ok, interval), Series(errors, interval)
    fast_series, count_series = Series(fast, interval), Series(count, interval)

    def sli(t: int, window: int) -> float | None:
        if kind == "availability":  # (sum(rate(5xx)) or vector(0)) / (sum(rate(all)) > 0)
            denominator = summed_increase([ok_series, error_series], t, window)
            bad = summed_increase([error_series], t, window) or 0.0
        else:  # (sum(rate(count)) - sum(rate(bucket{le=threshold}))) / (sum(rate(count)) > 0)
            denominator = increase(count_series, t, window)
            fast_increase = increase(fast_series, t, window)
            bad = denominator - fast_increase if denominator is not None and fast_increase is not None else 0.0
        if denominator is None or denominator <= 0:
            return None
        return bad / denominator

    return sli


def simulate(
    scenario: Scenario, objective: float, kind: str, scale: float, eval_every: int
) -> dict[int, dict[str, float]]:
    """Per evaluation step (in logical minutes): the value of each firing severity, from the Workbook's table."""
    sli = sli_function(scenario, kind, scale)
    budget = (100 - objective) / 100
    firing: dict[int, dict[str, float]] = {}
    for minute in range(0, scenario.minutes + 1, eval_every):
        t = round(minute * MINUTE * scale)
        for severity in ("page", "ticket"):
            for long, short, factor, window_severity in WORKBOOK_30D:
                if window_severity != severity:
                    continue
                limit = factor * budget
                short_value = sli(t, round(short * scale))
                long_value = sli(t, round(long * scale))
                if short_value is not None and long_value is not None and short_value > limit and long_value > limit:
                    firing.setdefault(minute, {})[severity] = short_value  # the first branch of the `or` wins
                    break
    return firing


def alert_tests(
    alert: str, scenario: Scenario, groups: tuple[RuleGroup, ...], firing: dict[int, dict[str, float]],
    minutes: list[int], scale: float, labels: dict[str, str],
) -> list[dict[str, Any]]:
    """promtool cases for ``alert``: at each of ``minutes``, exactly the severities ``firing`` expects."""
    from tests.rule_testing import duration

    assert alert_rule(groups, "page").alert == alert
    cases = []
    for minute in minutes:
        expected = [
            expected_alert(alert_rule(groups, severity), labels, value)
            for severity, value in sorted(firing.get(minute, {}).items())
        ]
        cases.append({"eval_time": duration(TimeScale(scale), minute * MINUTE), "alertname": alert,
                      "exp_alerts": expected})
    return [{"interval": duration(TimeScale(scale), MINUTE), "input_series": input_series(scenario),
             "alert_rule_test": cases}]


def slo_labels(slo: str) -> dict[str, str]:
    return {"sloth_id": f"{MODEL}-{slo}", "sloth_service": MODEL, "sloth_slo": slo, "namespace": NAMESPACE,
            "job": MODEL, "model_name": MODEL}


def first(firing: dict[int, dict[str, float]], severity: str) -> int:
    return min(m for m, fired in firing.items() if severity in fired)


@pytest.mark.tools
@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_fast_burn_pages_within_minutes(tmp_path: Path, scale: float):
    # Three healthy days first, so that every window holds only healthy traffic before the outage.
    onset = 3 * 24 * 60
    scenario = Scenario(minutes=onset + 40, error_ratio=lambda m: 0.0 if m <= onset else 1.0)
    config = monitors_config(timeScale=scale)
    groups = slo_groups(config, "requests-availability")
    firing = simulate(scenario, 99.5, "availability", scale, eval_every=1)
    page = first(firing, "page")
    assert 0 < page - onset <= 6, "a total outage must page within minutes"
    assert "ticket" not in firing[page], "the page comes before any ticket"
    minutes = [onset, page - 1, page, page + 10, scenario.minutes]
    tests = alert_tests(AVAILABILITY_ALERT, scenario, groups, firing, minutes, scale,
                        slo_labels("requests-availability"))
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=round(MINUTE * scale))


@pytest.mark.tools
@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_slow_burn_only_opens_a_ticket(tmp_path: Path, scale: float):
    # Three healthy days fill the longest window; then 1% errors, twice the 0.5% budget: the budget would
    # last 15 of its 30 days. That deserves a ticket, not a page.
    onset = 3 * 24 * 60
    scenario = Scenario(minutes=onset + 40 * 60, error_ratio=lambda m: 0.0 if m <= onset else 0.01)
    groups = slo_groups(monitors_config(timeScale=scale), "requests-availability")
    eval_every = 5
    firing = simulate(scenario, 99.5, "availability", scale, eval_every=eval_every)
    ticket = first(firing, "ticket")
    assert not any("page" in fired for fired in firing.values())
    assert ticket - onset > 24 * 60, "a slow burn is noticed within a day or two, by the 3d window"
    minutes = [onset + 6 * 60, ticket - eval_every, ticket, scenario.minutes]
    tests = alert_tests(AVAILABILITY_ALERT, scenario, groups, firing, minutes, scale,
                        slo_labels("requests-availability"))
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=round(eval_every * MINUTE * scale))


@pytest.mark.tools
def test_a_healthy_service_never_alerts(tmp_path: Path):
    # 0.2% errors and 0.3% slow requests, minute to minute between 0 and twice that: well within every budget.
    scenario = Scenario(
        minutes=4 * 24 * 60,
        error_ratio=lambda m: 0.004 if m % 2 else 0.0,
        slow_ratio=lambda m: 0.006 if m % 3 == 0 else 0.0015,
    )
    config = monitors_config()
    cases = []
    for slo, kind, objective in (("requests-availability", "availability", 99.5),
                                 ("requests-latency-100ms", "latency", 99.0),
                                 ("requests-latency-25ms", "latency", 95.0)):
        groups = slo_groups(config, slo)
        assert not simulate(scenario, objective, kind, 1.0, eval_every=30)
        alert = alert_rule(groups, "page").alert
        cases += [{"eval_time": f"{h}h", "alertname": alert, "exp_alerts": []} for h in range(0, 4 * 24 + 1, 6)]
    groups = tuple(g for g in groups_for(config) if g.name.startswith("sloth-slo-"))
    tests = [{"interval": "1m", "input_series": input_series(scenario), "alert_rule_test": cases}]
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=30 * MINUTE)


@pytest.mark.tools
def test_slow_responses_burn_the_latency_slo(tmp_path: Path):
    # Every request slower than 100 ms from the onset: the 99% objective's 1h window crosses 14.4% after
    # under nine minutes.
    onset = 6 * 60  # the 6h window full of healthy traffic
    scenario = Scenario(minutes=onset + 30, error_ratio=lambda _: 0.0,
                        slow_ratio=lambda m: 0.0 if m <= onset else 1.0)
    groups = slo_groups(monitors_config(), "requests-latency-100ms")
    firing = simulate(scenario, 99.0, "latency", 1.0, eval_every=1)
    page = first(firing, "page")
    assert 0 < page - onset <= 10
    tests = alert_tests(LATENCY_ALERT, scenario, groups, firing, [onset, page - 1, page], 1.0,
                        slo_labels("requests-latency-100ms"))
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=MINUTE)


@pytest.mark.tools
def test_error_budget_remaining_is_recorded(tmp_path: Path):
    # Six hours at 0.3% errors spend about 60% of the 0.5% budget; exactly: the mean of the 5m SLI recorded
    # at every evaluation so far (Sloth's period SLI), divided by the budget.
    scenario = Scenario(minutes=6 * 60, error_ratio=lambda _: 0.003)
    sli = sli_function(scenario, "availability", 1.0)
    recorded = [v for v in (sli(m * MINUTE, 5 * MINUTE) for m in range(0, 6 * 60 + 1)) if v is not None]
    remaining = 1 - (sum(recorded) / len(recorded)) / 0.005
    assert 0.35 < remaining < 0.45
    groups = slo_groups(monitors_config(), "requests-availability")
    identity = ", ".join(f'{k}="{v}"' for k, v in slo_labels("requests-availability").items())

    def close(expr: str, value: float, eval_time: str, window: str | None = None, *, period: bool = False) \
            -> dict[str, Any]:
        labels = identity + (f', sloth_window="{window}"' if window else "")  # as Sloth's: kept from the SLI
        labels += ', slo_store="prometheus"' if period else ""  # read from this Prometheus' own data
        return {"expr": f"abs({expr} - {value!r}) < bool 1e-12", "eval_time": eval_time,
                "exp_samples": [{"labels": f"{{{labels}}}", "value": 1}]}

    tests = [{
        "interval": "1m",
        "input_series": input_series(scenario),
        "promql_expr_test": [
            close(f"slo:period_error_budget_remaining:ratio{{{identity}}}", remaining, "6h", "30d", period=True),
            close(f"slo:sli_error:ratio_rate1h{{{identity}}}", 0.003, "6h", "1h"),
            close(f"slo:error_budget:ratio{{{identity}}}", 0.005, "1h"),
            close(f"slo:objective:ratio{{{identity}}}", 0.995, "1h"),
        ],
    }]
    run_rule_tests(tmp_path, groups, tests, evaluation_interval_ms=MINUTE)


def test_expected_thresholds_match_the_generated_ones():
    """The simulation's thresholds (the Workbook's table) are the ones rendered into the rules."""
    for window, (_, _, factor, _) in zip(WORKBOOK_WINDOWS, WORKBOOK_30D, strict=True):
        assert float(threshold(window, 99.5, "30d")) == pytest.approx(factor * 0.005, abs=1e-15)
