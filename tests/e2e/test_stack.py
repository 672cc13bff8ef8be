"""What the end-to-end servers are given, checked without starting them: the pinned binaries only, and the
stack's alerting durations compressed by the same factor as the monitors' windows."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from components.monitoring.alertmanager import Receiver, configured_receivers
from components.monitoring.config import AlertingConfig
from components.monitors.rule_model import TimeScale
from tests.e2e.stack import alerting_config, require_server
from tests.harness import STACKS_DIR
from tests.tools import tool_versions


def fake_binary(tools_dir: Path, name: str, reported_version: str) -> Path:
    folder = {"prometheus": "prometheus", "alertmanager": "alertmanager"}[name]
    version = tool_versions()["PROMETHEUS_VERSION" if name == "prometheus" else "ALERTMANAGER_VERSION"]
    path = tools_dir / f"{folder}-{version}" / "bin" / name
    path.parent.mkdir(parents=True)
    path.write_text(f"#!/bin/sh\necho '{name}, version {reported_version} (branch: HEAD, revision: x)'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.mark.parametrize("name", ["prometheus", "alertmanager"])
def test_an_older_build_at_the_pinned_path_fails_in_strict_mode(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_binary(tmp_path, name, "2.42.0" if name == "prometheus" else "0.25.0")
    monkeypatch.setenv("ML_OBS_TOOLS_DIR", str(tmp_path))
    monkeypatch.setenv("ML_OBS_STRICT", "1")
    with pytest.raises(pytest.fail.Exception, match="not version"):
        require_server(name)
    monkeypatch.setenv("ML_OBS_STRICT", "0")
    with pytest.raises(pytest.skip.Exception, match=r"install-tools\.sh"):
        require_server(name)


def test_the_pinned_build_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = tool_versions()["PROMETHEUS_VERSION"].removeprefix("v")
    path = fake_binary(tmp_path, "prometheus", pinned)
    monkeypatch.setenv("ML_OBS_TOOLS_DIR", str(tmp_path))
    assert require_server("prometheus") == path


def test_alerting_durations_compress_with_the_monitors_and_every_receiver_is_configured() -> None:
    stack_file = STACKS_DIR / "Pulumi.local.yaml"
    compressed = alerting_config(stack_file, time_scale=0.03)
    default = AlertingConfig()
    scale = TimeScale(0.03)
    assert compressed.group_wait == scale.render(default.group_wait)
    assert compressed.group_interval == scale.render(default.group_interval)
    assert compressed.repeat_interval == scale.render(default.repeat_interval)
    assert compressed.resolve_timeout == scale.render(default.resolve_timeout)
    assert configured_receivers(compressed) == tuple(Receiver)
    assert compressed.group_by == default.group_by and compressed.inhibit_equal == default.inhibit_equal
