"""The monitors of a model that exports the metric contract (``model_service.contract``).

Rules are typed objects (``rule_model``) built by one module per concern: the SLO generator (``slo_rules``) and
the contract's two SLOs (``model_slos``), drift (``drift_rules``), accuracy, targets and resources
(``model_rules``); every alert has a runbook (``runbooks``). The overview dashboard is built as code
(``overview_dashboard``). Two components declare them: ``ModelMonitors`` (a ServiceMonitor and a PrometheusRule
per model) and ``ModelDashboards`` (the dashboard ConfigMap, once for every model).
"""
