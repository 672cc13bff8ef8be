"""End-to-end: the monitors against a real Prometheus and Alertmanager, without Kubernetes.

The sample model service, Prometheus and Alertmanager run as local processes on loopback ports. Everything they
are given comes from the program itself, run under mocks: the scrape job's interval, path and target labels
from the ServiceMonitor and Service it declares (how the real operator turns them into Prometheus' configuration
is proven by ``tests/node``), the rule file is its PrometheusRule's spec, the service's environment is its
Deployment's, and Alertmanager's configuration is rendered by the monitoring
component's own function. Time is compressed through the monitors' one time-scale setting and the alerting
section's durations, so that an hour of windows passes in seconds.
"""
