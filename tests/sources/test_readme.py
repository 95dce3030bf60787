"""The README's copy-paste examples for the two sources work as written."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.config.loader import load_config
from tests.sources.helpers import REPO, config_dir


def yaml_blocks(section: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    end = text.index("\n## ", start + 1)
    return re.findall(r"```yaml\n(.*?)```", text[start:end], flags=re.S)


def test_the_prometheus_example_passes_check(tmp_path: Path) -> None:
    block = yaml_blocks("Pulling metrics from Prometheus")[0]
    config = load_config(config_dir(tmp_path, block))
    assert config.prometheus is not None and len(config.prometheus.queries) == 2


def test_the_distributed_store_options_pass_check_with_the_example_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries, access = yaml_blocks("Pulling metrics from Prometheus")[:2]
    monkeypatch.setenv("PROMETHEUS_TOKEN", "a-token-from-the-environment")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("(read at the first pull)\n")
    merged = yaml.safe_load(queries)
    merged["prometheus"] |= yaml.safe_load(access.replace("/etc/ssl/certs/internal-ca.pem", str(ca_file)))["prometheus"]
    config = load_config(config_dir(tmp_path / "config", yaml.safe_dump(merged)))
    assert config.prometheus is not None
    assert config.prometheus.request_headers() == {
        "X-Scope-OrgID": "ml-platform",
        "Authorization": "Bearer a-token-from-the-environment",
    }


def test_the_alertmanager_section_example_passes_check(tmp_path: Path) -> None:
    section = next(b for b in yaml_blocks("Alertmanager webhook") if b.startswith("alertmanager:"))
    assert load_config(config_dir(tmp_path, section)).alertmanager.default_model == "unknown"


def test_the_alertmanager_yml_example_passes_amtool(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian: prometheus-alertmanager) is not installed")
    example = next(b for b in yaml_blocks("Alertmanager webhook") if b.startswith("# alertmanager.yml"))
    path = tmp_path / "alertmanager.yml"
    path.write_text(example.replace("<the bot's INGEST_TOKEN>", "t0ken"), encoding="utf-8")
    checked = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
