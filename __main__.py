"""ml-observability: one environment's cluster, monitoring stack, model service and monitors.

Reads as the architecture: validate the stack's configuration (nothing is declared if it is wrong), build the
cluster, then everything that runs on it with the cluster's Kubernetes provider, and export what a person
needs to reach it.
"""

import pulumi

from components.cluster import create_cluster
from components.config import load_stack_config

config = load_stack_config()

cluster = create_cluster("cluster", config.cluster)

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("clusterKind", cluster.kind)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("kubernetesVersion", cluster.kubernetes_version)
pulumi.export("defaultStorageClass", cluster.default_storage_class)
