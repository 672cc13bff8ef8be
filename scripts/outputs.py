#!/usr/bin/env python3
"""What a person needs to open a deployed stack, from its outputs: Grafana's URL, user and password, the
port-forward commands for Prometheus, Alertmanager and each model, and the kubeconfig they use.

``make outputs`` pipes ``pulumi stack output --json --show-secrets`` into it, with the same backend and
passphrase as ``make up``, and gives the path the kubeconfig output was written to::

    pulumi stack output --json --show-secrets | python3 scripts/outputs.py --kubeconfig .state/local.kubeconfig

Every name and port comes from the outputs (the in-cluster URLs the program exports), none is repeated here.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit

LOCAL_PORTS = {"prometheus": 9090, "alertmanager": 9093}
"""The local end of each port-forward: the server's own port, as its documentation's examples use."""
FIRST_MODEL_PORT = 8080


def service_of(url: str) -> tuple[str, str, int]:
    """``(namespace, service, port)`` of an in-cluster URL ``http://<service>.<namespace>.svc:<port>``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    labels = host.split(".")
    if len(labels) < 3 or labels[2] != "svc" or parts.port is None:
        raise ValueError(f"not an in-cluster Service URL: {url!r}")
    return labels[1], labels[0], parts.port


def port_forward(url: str, local_port: int, kubeconfig: str) -> str:
    namespace, service, port = service_of(url)
    return (f"KUBECONFIG={shlex.quote(kubeconfig)} kubectl --namespace {namespace} port-forward "
            f"service/{service} {local_port}:{port}")


def lines_for(outputs: Mapping[str, Any], kubeconfig: str) -> list[str]:
    lines = []
    if outputs.get("grafanaUrl"):
        lines.append(f"Grafana       {outputs['grafanaUrl']}")
    elif outputs.get("grafanaPortForward"):
        lines.append(f"Grafana       KUBECONFIG={shlex.quote(kubeconfig)} {outputs['grafanaPortForward']}"
                     "   then http://localhost:3000")
    lines.append(f"  user        {outputs['grafanaAdminUser']}")
    lines.append(f"  password    {outputs['grafanaAdminPassword']}")
    for name, key in (("Prometheus", "prometheusUrl"), ("Alertmanager", "alertmanagerUrl")):
        local = LOCAL_PORTS[name.lower()]
        lines.append(f"{name:13} {port_forward(outputs[key], local, kubeconfig)}   then http://localhost:{local}")
    for offset, (model, facts) in enumerate(sorted((outputs.get("models") or {}).items())):
        url = facts.get("url")
        if not url:
            continue
        local = FIRST_MODEL_PORT + offset
        lines.append(f"model {model}: {port_forward(url, local, kubeconfig)}   then http://localhost:{local}"
                     " (its API: model-service/README.md)")
    if outputs.get("modelDashboard"):
        lines.append(f"dashboard     {outputs['modelDashboard']} (Grafana, folder of the model dashboards)")
    return lines


def main(argv: list[str] | None = None, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True, help="where the stack's kubeconfig output was written")
    args = parser.parse_args(argv)
    text = stdin.read()
    if not text.strip():
        print("the stack has no outputs yet: run make up first", file=sys.stderr)
        return 1
    for line in lines_for(json.loads(text), args.kubeconfig):
        print(line, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
