"""Thanos Ruler as the evaluator of a store of your own: the operator's ``ThanosRuler``, enabled through the chart,
queries the store's query API and writes what it records back to the store.

A model's period groups become a PrometheusRule that carries the discovery labels and ``RULE_EVALUATOR_LABEL``:
Prometheus' rule selector leaves it out, the ruler's selects it (``components/monitoring/values.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import RULE_EVALUATOR_LABEL
from components.monitors.model_monitors import MONITORING_API_VERSION
from components.monitors.rule_model import RuleGroup, to_spec


@dataclass(frozen=True, kw_only=True)
class ThanosRulerRules:
    """Rule groups evaluated by the stack's Thanos Ruler against a store's query API."""

    store: str
    """The store's name (``slo_store`` of what the ruler records)."""
    cluster_label: pulumi.Input[str]
    query_url: str
    """The store's Prometheus query API, which the ruler queries."""

    def declare(
        self,
        name: str,
        *,
        groups: pulumi.Output[Sequence[RuleGroup]],
        namespace: pulumi.Input[str],
        labels: Mapping[str, str],
        parent: pulumi.Resource,
    ) -> pulumi.Resource:
        return k8s.apiextensions.CustomResource(
            name,
            api_version=MONITORING_API_VERSION,
            kind="PrometheusRule",
            metadata={"name": name, "namespace": namespace,
                      "labels": {**labels, RULE_EVALUATOR_LABEL: self.store}},
            spec=groups.apply(to_spec),
            opts=pulumi.ResourceOptions(parent=parent),
        )
