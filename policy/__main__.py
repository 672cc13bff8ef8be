"""The pack's entry point, started by the Pulumi CLI (``pulumi preview --policy-pack policy``).

Never imported by tests: ``PolicyPack`` serves the analyzer protocol and blocks forever. The policies live in
``policies.py``, importable and unit-tested.
"""

from policies import PACK_NAME, build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(),
    description="Workloads sized, non-root and pinned; charts pinned; Grafana's password from a Secret; monitors "
    "discoverable; cloud clusters protected.",
)
