"""Docs that cannot drift (issue 18 §6): the configuration tables and the command reference are
generated from the code; a setting without a description, a stale block or a stale reference fails."""
from __future__ import annotations

import dataclasses

import pytest

from exchange import docgen
from exchange.config import Config


def test_generated_docs_are_current():
    stale = [str(path.relative_to(docgen.ROOT)) for path, text in docgen.expected_files().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"run `python -m exchange.docgen`: stale {stale}"


def test_every_setting_is_in_both_tables_described_once():
    readme = (docgen.ROOT / "README.md").read_text(encoding="utf-8")
    deploy = (docgen.ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for f in dataclasses.fields(Config):
        if f.name in docgen.INTERNAL:
            continue
        var = f"`EXCHANGE_{f.name.upper()}`"
        rows = {doc: [line for line in text.splitlines() if line.startswith(f"| {var} |")]
                for doc, text in (("README", readme), ("deploy", deploy))}
        assert len(rows["README"]) == 1 and len(rows["deploy"]) == 1, (var, rows)
        assert rows["README"] == rows["deploy"], var  # described the same way in both places


def test_a_setting_without_description_fails():
    source = (docgen.ROOT / "exchange" / "config.py").read_text(encoding="utf-8")
    broken = source.replace('    log_format: str = "plain"  # plain | json (one JSON object per line)\n',
                            '    log_format: str = "plain"\n')
    assert broken != source
    assert not docgen.setting_comments(broken)["log_format"]
    assert docgen.setting_comments(source)["log_format"] == "plain | json (one JSON object per line)"
    # comment lines above a field describe it; a section rule does not
    assert docgen.setting_comments(source)["adapter_base_urls"].startswith('JSON {"adapter type": "base URL"}')
    with pytest.raises(ValueError, match="log_format"):
        orig = docgen.setting_comments
        docgen.setting_comments = lambda: {**orig(), "log_format": ""}
        try:
            docgen.settings()
        finally:
            docgen.setting_comments = orig


def test_command_reference_names_every_command_and_option():
    from exchange.cli import main

    ref = docgen.command_reference()
    for name in ("exchange serve", "exchange worker", "exchange keys rotate", "exchange blobs init"):
        assert f"## `{name}`" in ref
    for opt in ("--workers", "--threads", "--concurrency", "--metrics-port"):
        assert f"`{opt}`" in ref
    listed = {line.split("`")[1].split()[1] for line in docgen.command_list().splitlines()}
    assert set(main.commands) == listed


def test_grafana_dashboard_uses_only_metrics_the_exchange_exports(runtime):
    import json
    import re

    from exchange import metrics  # noqa: F401 - registers the collectors

    dash = json.loads((docgen.ROOT / "docs" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(exchange_[a-z_]+)", e)}
    deploy = (docgen.ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in used:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f"`{base}" in deploy or f"{base}`" in deploy or base in deploy, name  # documented
    from prometheus_client import REGISTRY

    from exchange.metrics import DatabaseCollector

    exported = {m.name for m in REGISTRY.collect()} | {m.name for m in DatabaseCollector(runtime.db).collect()}
    for name in used:
        base = re.sub(r"_(bucket|count|sum|total)$", "", name)
        assert base in exported, name
