"""Who evaluates the rules that read more data than the cluster's Prometheus keeps.

A model's rules run in the Prometheus that scrapes it, except the SLO period's recordings (``slo_rules``,
``is_period_group``): they read a whole period, 30 days by default, and when Prometheus keeps less, a store that
holds the data evaluates them instead. A ``RuleEvaluator`` is that store's side: ``ModelMonitors`` renders the
period groups for it (labelled ``slo_store`` with its name, selecting this cluster's series by its ``cluster``
label) and asks it to declare them. The stores' own evaluators live with the stores
(``components/monitoring/stores``): Thanos Ruler for a store of your own, the workspace's rules on AMP and Azure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import pulumi

from components.monitors.rule_model import RuleGroup


class RuleEvaluator(Protocol):
    """A store that evaluates rule groups against the data it holds."""

    @property
    def store(self) -> str:
        """The store's name: the ``slo_store`` label of what it records."""
        ...

    @property
    def cluster_label(self) -> pulumi.Input[str]:
        """The ``cluster`` label of this cluster's series in the store, which the rules it evaluates select."""
        ...

    def declare(
        self,
        name: str,
        *,
        groups: pulumi.Output[Sequence[RuleGroup]],
        namespace: pulumi.Input[str],
        labels: Mapping[str, str],
        parent: pulumi.Resource,
    ) -> pulumi.Resource:
        """Declare ``groups`` for evaluation: a resource named ``name`` (a DNS subdomain, also the object's name
        where it is one), a child of ``parent``; ``namespace`` and ``labels`` are the model's monitors', for
        evaluators that are Kubernetes objects."""
        ...
