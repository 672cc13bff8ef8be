"""The monitoring stack of a cluster: kube-prometheus-stack as one Helm release (``stack.MonitoringStack``), its
values built from the typed configuration (``values``) and Alertmanager's configuration (``alertmanager``)."""
