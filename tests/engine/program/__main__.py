"""Entry point of the engine tests' project: the real ``__main__.py``, with test-only transforms when asked.

The engine runs this file as the project's program (the generated Pulumi.yaml names this folder as ``main``).
With ``ML_OBS_ENGINE_NO_WAIT=1`` (set only by the up/destroy test) it first registers a stack transform that
lets the program's objects land on an API server with no kubelet: nothing in the product changes.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parents[3]

# Kinds whose await waits on something only a kubelet or a load balancer would bring (pods, endpoints).
AWAITED_KINDS = ("kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service", "kubernetes:apps/v1:StatefulSet")


def _no_wait(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """skipAwait on awaited objects; the release neither awaits its workloads nor runs its hooks."""
    props: dict[str, Any] = dict(args.props)
    if args.type_ in AWAITED_KINDS:
        metadata = pulumi.Output.from_input(props.get("metadata") or {})
        props["metadata"] = metadata.apply(
            lambda m: {**m, "annotations": {**(m.get("annotations") or {}), "pulumi.com/skipAwait": "true"}}
        )
    elif args.type_ == "kubernetes:helm.sh/v3:Release":
        props["skipAwait"] = True
        props["disableWebhooks"] = True
    else:
        return None
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)


def _started_as_policy_pack() -> bool:
    """True when the engine meant to start the policy pack, not the program.

    The CLI starts a Python policy pack through the language host's ``RunPlugin``, naming the pack's folder in a
    field the served language host (3.68, see scripts/tool-versions.env) predates; that host then runs
    ``python '' <engine address>`` in the program's folder, which starts this file with no program arguments.
    """
    return sys.argv[0] == "" and len(sys.argv) == 2 and bool(os.environ.get("ML_OBS_ENGINE_POLICY_PACK"))


if _started_as_policy_pack():
    # Exactly what the pack's analyzer script (pulumi-analyzer-policy-python) runs: pulumi-policy's entry point,
    # unbuffered (it writes its port to stdout without flushing), with the engine's address and the pack's folder.
    pack = os.environ["ML_OBS_ENGINE_POLICY_PACK"]
    os.chdir(pack)
    os.execv(sys.executable, [sys.executable, "-u", "-m", "pulumi.policy", sys.argv[1], pack])

if os.environ.get("ML_OBS_ENGINE_NO_WAIT") == "1":
    pulumi.runtime.register_resource_transform(_no_wait)

sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
