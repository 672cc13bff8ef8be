"""``ModelNamespace``: a namespace several deployed models share, created once by the program.

``ModelDeployment`` can create its own namespace, which suits one model; a fleet puts several models in one
namespace, and a namespace must have one owner. The program declares one ``ModelNamespace`` per namespace of its
deployed models and passes its ``name`` (an Output, so that the models wait for it) to each.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.contracts import common_labels
from components.model.deployment import restricted_namespace_labels

COMPONENT = "models"


class ModelNamespace(pulumi.ComponentResource):
    """A Namespace for model services, with Pod Security ``restricted`` enforced (every model's pods meet it).

    Child: ``<name>-ns``. Takes the cluster's Kubernetes provider through ``opts``.
    """

    TYPE = "mlobs:model:ModelNamespace"

    name: pulumi.Output[str]
    """The namespace's name, once it exists."""

    def __init__(self, name: str, namespace: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(self.TYPE, name, None, opts)
        created = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": namespace,
                "labels": {**common_labels(namespace, namespace, COMPONENT), **restricted_namespace_labels()},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = created.metadata.apply(lambda metadata: str(metadata.name))
        self.register_outputs({"name": self.name})
