"""The README's "Outgoing webhooks" examples work as written and match what is sent."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config.loader import Config, load_config
from bot.notify.notifier import Notification
from bot.notify.webhook_signature import sign
from bot.notify.webhooks import ALERT_FIELDS, build_body

REPO = Path(__file__).resolve().parents[2]
SECRET = "0123456789abcdef0123456789abcdef"


def blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("### Outgoing webhooks\n")
    end = text.index("\n### ", start + 1)
    return re.findall(rf"```{language}\n(.*?)```", text[start:end], flags=re.S)


def config_with(tmp_path: Path, webhooks: str) -> Path:
    (tmp_path / "rules").mkdir()
    for name in ("ml", "models", "slos"):
        (tmp_path / "rules" / f"{name}.yaml").write_text((REPO / "rules" / f"{name}.yaml").read_text())
    (tmp_path / "rules" / "hooks.yaml").write_text(webhooks)
    (tmp_path / "runbooks").symlink_to(REPO / "runbooks")
    return tmp_path


@pytest.fixture
def readme_verify(tmp_path: Path) -> Callable[[str, bytes, str], bool]:
    """The README's verification snippet, imported as a module of its own."""
    (snippet,) = blocks("python")
    path = tmp_path / "readme_verify.py"
    path.write_text(snippet, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("readme_verify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verify: Callable[[str, bytes, str], bool] = module.verify
    return verify


def test_the_readme_snippet_accepts_what_the_bot_signs_and_refuses_forgeries_and_replays(
    readme_verify: Callable[[str, bytes, str], bool],
) -> None:
    body = b'{"version":1,"event":"paged"}'
    assert readme_verify(SECRET, body, sign(SECRET, body))
    assert not readme_verify(SECRET, body.replace(b"paged", b"fired"), sign(SECRET, body))
    assert not readme_verify("another-secret-0123456789", body, sign(SECRET, body))
    old = sign(SECRET, body, timestamp=int(time.time()) - 600)
    assert not readme_verify(SECRET, body, old)
    assert not readme_verify(SECRET, body, "v1=00")


def test_the_readme_and_shipped_examples_load_once_the_secret_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATUS_PAGE_WEBHOOK_SECRET", SECRET)
    (readme,) = blocks("yaml")
    shipped = (REPO / "rules" / "settings.yaml").read_text(encoding="utf-8")
    commented = shipped[shipped.index("# webhooks:") :]
    uncommented = "\n".join(line.removeprefix("# ") for line in commented.splitlines())
    for example, where in ((readme, tmp_path / "a"), (uncommented, tmp_path / "b")):
        where.mkdir()
        [hook] = load_config(config_with(where, example)).webhooks
        assert (hook.name, hook.secret.get_secret_value()) == ("status-page", SECRET)
        assert hook.events == ["fired", "acknowledged", "resolved", "escalated", "paged"]


def test_the_documented_body_has_the_fields_a_fired_event_is_sent_with(config: Config) -> None:
    (documented,) = (json.loads(block) for block in blocks("json"))
    payload = {"webhook_event": "fired", "at": "2026-01-05T09:03:00+00:00", "incident_id": 12, "alert_id": 41}
    sent = build_body(Notification(1, "webhook:x", "alert.fired", 41, payload), "fired", config)
    assert documented.keys() == sent.keys()
    assert documented["alert"].keys() == sent["alert"].keys() == {"id", *ALERT_FIELDS}
    assert documented["links"].keys() == sent["links"].keys()
