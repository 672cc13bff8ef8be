"""The series of the cluster the model's rules and its dashboard both read: kube-state-metrics', the kubelet's
cAdvisor's and one recording of kube-prometheus-stack, named once.

``scripts/kube-prometheus-stack-metrics.txt`` lists every series the pinned chart scrapes or records; a test
checks that each name below is one of them, so a chart upgrade that renames one fails there.
"""

from __future__ import annotations

from typing import Final

# kube-state-metrics
KUBE_POD_OWNER: Final = "kube_pod_owner"
KUBE_REPLICASET_OWNER: Final = "kube_replicaset_owner"
KUBE_POD_CONTAINER_RESOURCE_LIMITS: Final = "kube_pod_container_resource_limits"
KUBE_POD_CONTAINER_STATUS_RESTARTS: Final = "kube_pod_container_status_restarts_total"
KUBE_DEPLOYMENT_SPEC_REPLICAS: Final = "kube_deployment_spec_replicas"
KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE: Final = "kube_deployment_status_replicas_available"

# the kubelet's cAdvisor (a series with an empty `container` label is the pod's own cgroup, not a container's)
CONTAINER_CPU_USAGE_SECONDS: Final = "container_cpu_usage_seconds_total"
CONTAINER_MEMORY_WORKING_SET_BYTES: Final = "container_memory_working_set_bytes"

# kube-prometheus-stack's recording of each pod's owning workload
NAMESPACE_WORKLOAD_POD: Final = "namespace_workload_pod:kube_pod_owner:relabel"

CLUSTER_SERIES: Final = (
    KUBE_POD_OWNER, KUBE_REPLICASET_OWNER, KUBE_POD_CONTAINER_RESOURCE_LIMITS, KUBE_POD_CONTAINER_STATUS_RESTARTS,
    KUBE_DEPLOYMENT_SPEC_REPLICAS, KUBE_DEPLOYMENT_STATUS_REPLICAS_AVAILABLE, CONTAINER_CPU_USAGE_SECONDS,
    CONTAINER_MEMORY_WORKING_SET_BYTES, NAMESPACE_WORKLOAD_POD,
)
