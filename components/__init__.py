"""ml-observability's component library: clusters, the monitoring stack, model deployments and their monitors.

Each module holds one component (or one contract). Components take typed arguments and explicit providers,
parent their children to themselves and document their outputs, so that a platform team can compose them in
its own Pulumi program.
"""
