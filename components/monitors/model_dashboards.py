"""``ModelDashboards``: the model dashboards (the overview and the runbooks the alerts link) as ConfigMaps that
Grafana's dashboard sidecar imports.

With the label of the monitoring stack's dashboard contract, in a namespace the sidecar searches, under one
folder. Declare it once per program: the dashboard serves every model that exports the metric contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import DashboardContract, common_labels
from components.monitors.dashboard_ids import dashboard_json, slug
from components.monitors.overview_dashboard import model_dashboard
from components.monitors.runbooks import runbooks_dashboard

DEFAULT_FOLDER: Final = "ML models"


def config_map_name(title: str) -> str:
    """``metadata.name`` of the ConfigMap that holds the dashboard titled ``title``."""
    return f"{slug(title)}-dashboard"


@dataclass(frozen=True, kw_only=True)
class ModelDashboardsArgs:
    """Where the dashboards go."""

    namespace: pulumi.Input[str]
    """Namespace of the ConfigMaps: one the Grafana sidecar searches (the monitoring stack's namespace)."""
    contract: DashboardContract
    """The sidecar's label, the namespaces it searches and its folder annotation: the stack's ``dashboards``."""
    folder: str = DEFAULT_FOLDER
    """Grafana folder the dashboards land in."""

    def namespace_problems(self, namespace: str) -> list[str]:
        allowed = self.contract.namespaces
        if allowed is not None and namespace not in allowed:
            return [f"namespace {namespace!r} is not searched by Grafana's dashboard sidecar ({', '.join(allowed)})"]
        return []


class ModelDashboards(pulumi.ComponentResource):
    """The model dashboard as a ConfigMap Grafana's sidecar imports; declare it once for all models.

    Child: ``<name>-dashboard-<slug>``, labelled with the dashboard contract's label, in ``args.namespace``,
    annotated with the folder.
    """

    TYPE: Final = "mlobs:monitoring:ModelDashboards"

    titles: list[str]
    """Titles of the dashboards."""
    uids: list[str]
    """Their uids (stable: derived from the titles)."""
    config_map_names: list[str]
    """``metadata.name`` of their ConfigMaps."""

    def __init__(self, name: str, args: ModelDashboardsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if isinstance(args.namespace, str) and (problems := args.namespace_problems(args.namespace)):
            raise pulumi.RunError(f"ModelDashboards {name!r}: " + "; ".join(problems))
        super().__init__(self.TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)

        def checked(namespace: str) -> str:
            if problems := args.namespace_problems(namespace):
                raise pulumi.RunError(f"ModelDashboards {name!r}: " + "; ".join(problems))
            return namespace

        namespace = pulumi.Output.from_input(args.namespace).apply(checked)
        self.titles, self.uids, self.config_map_names = [], [], []
        for builder in (model_dashboard(), runbooks_dashboard()):
            built = builder.build()
            key = slug(built.title or "")
            name_of_map = config_map_name(built.title or "")
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{key}",
                metadata={
                    "name": name_of_map,
                    "namespace": namespace,
                    "labels": {**common_labels(key, key, "dashboards"), **args.contract.labels},
                    "annotations": {args.contract.folder_annotation: args.folder},
                },
                data={f"{key}.json": dashboard_json(builder)},
                opts=child,
            )
            self.titles.append(built.title or "")
            self.uids.append(built.uid or "")
            self.config_map_names.append(name_of_map)
        self.register_outputs(
            {"titles": self.titles, "uids": self.uids, "configMapNames": self.config_map_names}
        )
