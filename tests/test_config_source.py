"""The one adapter that reads the SDK's internal config map, pinned so that an SDK change fails loudly."""

from __future__ import annotations

import json

import pulumi

from components.config.source import read_project_settings


def test_reads_every_key_of_the_project_namespace_and_nothing_else(monkeypatch):
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    pulumi.runtime.set_all_config(
        {
            "proj:cluster": json.dumps({"kind": "kind"}),
            "proj:typo": "value",
            "kubernetes:context": "kind-x",
            "aws:region": "eu-west-1",
            "other:cluster": "{}",
        },
        ["proj:typo"],
    )
    settings = read_project_settings("proj")
    assert set(settings) == {"cluster", "typo"}
    assert settings["cluster"].value == {"kind": "kind"}
    assert settings["cluster"].secret is False
    assert settings["typo"].value == "value"
    assert settings["typo"].secret is True


def test_reads_the_map_the_language_host_passes_in_the_environment(monkeypatch):
    pulumi.runtime.set_all_config({}, [])
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"proj:cluster": '{"kind": "eks"}', "aws:region": "x"}))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["proj:cluster"]))
    settings = read_project_settings("proj")
    assert set(settings) == {"cluster"}
    assert settings["cluster"].value == {"kind": "eks"}
    assert settings["cluster"].secret is True
