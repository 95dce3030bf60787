"""The ``webhooks:`` section: what loads, and the file:line errors of what does not."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bot.config.holder import ConfigHolder
from bot.config.loader import load_config
from bot.config.webhook_schema import WEBHOOK_EVENTS
from bot.errors import ConfigError, ConfigProblem
from bot.logs import configure_logging
from tests.config.test_loader import MODEL, RULE, MakeDir, config_dir, line_of, problems_of, the_problem
from tests.test_logs import restore_logging

__all__ = ["config_dir", "restore_logging"]  # fixtures, used by name

SECRET = "whsec-0123456789abcdef0123456789"


def hooks(body: str) -> str:
    return "webhooks:\n" + body


def test_a_webhook_loads_with_its_secret_from_the_environment(
    config_dir: MakeDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERS_HOOK_SECRET", SECRET)
    text = hooks(
        "  - name: orders\n"
        "    url: https://hooks.example.com/incidents\n"
        "    secret: ${ORDERS_HOOK_SECRET}\n"
        "    events: [fired, Resolved, paged, fired]\n"
        "  - url: http://127.0.0.1:9000/hook\n"
        f"    secret: {SECRET}-two\n"
        f"    events: {list(WEBHOOK_EVENTS)}\n"
    )
    config = load_config(config_dir(rules=RULE, models=MODEL, hooks=text))
    orders, local = config.webhooks
    assert (orders.name, orders.channel, orders.events) == ("orders", "webhook:orders", ["fired", "resolved", "paged"])
    assert orders.secret.get_secret_value() == SECRET and SECRET not in repr(orders)
    assert local.name == "127-0-0-1" and local.events == list(WEBHOOK_EVENTS)  # named after the host
    assert set(config.secret_values()) == {SECRET, f"{SECRET}-two", orders.url, local.url}


def test_no_webhooks_is_the_default(config_dir: MakeDir) -> None:
    assert load_config(config_dir(rules=RULE, models=MODEL)).webhooks == ()


def test_an_unknown_event_names_its_line_and_the_valid_events(config_dir: MakeDir) -> None:
    text = hooks(
        f"  - name: ops\n    url: https://h.example.com/x\n    secret: {SECRET}\n"
        "    events:\n      - fired\n      - fird\n"
    )
    problem = the_problem(config_dir(rules=RULE, models=MODEL, hooks=text))
    assert (problem.file, problem.line) == ("rules/hooks.yaml", line_of(text, "- fird"))
    assert "unknown event 'fird'; did you mean 'fired'?" in problem.message
    assert "fired, acknowledged, resolved, escalated, paged" in problem.message
    assert problem.message.startswith("webhooks[0] (ops).events[1]:")


def test_an_unset_environment_variable_is_named_and_the_load_fails(
    config_dir: MakeDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_EXPORTED_SECRET", raising=False)
    text = hooks("  - url: https://h.example.com/x\n    secret: ${NOT_EXPORTED_SECRET}\n    events: [fired]\n")
    problem = the_problem(config_dir(rules=RULE, models=MODEL, hooks=text))
    assert problem.line == line_of(text, "secret:")
    assert "environment variable NOT_EXPORTED_SECRET is not set" in problem.message


@pytest.mark.parametrize(
    ("entry", "needle", "expected"),
    [
        (f"url: ftp://h.example.com/x\n    secret: {SECRET}\n    events: [fired]", "url:", "http:// or https://"),
        ("url: https://h.example.com/x\n    secret: too-short\n    events: [fired]", "secret:", "shorter than 16"),
        ("url: https://h.example.com/x\n    secret: 1234567890123456789\n    events: [fired]", "secret:", "text"),
        (f"url: https://h.example.com/x\n    secret: {SECRET}\n    events: []", "events:", "at least 1"),
        (f"url: https://h.example.com/x\n    secret: {SECRET}\n    evnts: [fired]", "evnts:", "'events'"),
        (f"name: Ops\n    url: https://h.example.com/x\n    secret: {SECRET}\n    events: [fired]", "name:", "lower"),
    ],
)
def test_a_wrong_entry_is_located_and_explained(config_dir: MakeDir, entry: str, needle: str, expected: str) -> None:
    text = hooks(f"  - {entry}\n")
    problems = problems_of(config_dir(rules=RULE, models=MODEL, hooks=text))
    problem = next((p for p in problems if expected in p.message), problems[0])
    assert expected in problem.message, problems
    assert problem.line == line_of(text, needle)


def test_a_secret_never_appears_in_a_configuration_error(config_dir: MakeDir) -> None:
    short = "short-secret"  # too short: refused, and not repeated
    text = hooks(f"  - url: https://h.example.com/x\n    secret: {short}\n    events: [fird]\n")
    with pytest.raises(ConfigError) as failed:
        load_config(config_dir(rules=RULE, models=MODEL, hooks=text))
    assert short not in str(failed.value) and len(failed.value.problems) == 2


def test_two_webhooks_may_not_share_a_name_across_files(config_dir: MakeDir) -> None:
    one = hooks(f"  - url: https://hooks.example.com/a\n    secret: {SECRET}\n    events: [fired]\n")
    two = hooks(f"  - url: https://hooks.example.com/b\n    secret: {SECRET}\n    events: [paged]\n")
    problem = the_problem(config_dir(rules=RULE, models=MODEL, a=one, b=two))
    assert problem == ConfigProblem(
        "rules/b.yaml",
        2,
        "webhooks[0]: the name 'hooks-example-com' is already used (rules/a.yaml webhooks[0]); "
        "give each webhook a distinct name:",
    )


@pytest.mark.usefixtures("restore_logging")
def test_webhook_secrets_and_urls_are_redacted_from_the_log_once_the_configuration_is_read(
    config_dir: MakeDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    configure_logging(stream=out, secrets=[])
    url = "https://hooks.example.com/T0KEN-in-the-path"
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    text = hooks(f"  - url: {url}\n    secret: ${{HOOK_SECRET}}\n    events: [fired]\n")
    holder = ConfigHolder(config_dir(rules=RULE, models=MODEL, hooks=text))
    logging.getLogger("bot.test").warning("leaked %s to %s", SECRET, url)
    monkeypatch.setenv("HOOK_SECRET", SECRET + "-rotated")
    assert holder.reload()
    logging.getLogger("bot.test").warning("rotated %s", SECRET + "-rotated")
    logged = out.getvalue()
    assert SECRET not in logged and "T0KEN" not in logged
    assert logged.count("[redacted]") == 3


def test_the_shipped_configuration_still_loads_without_any_webhook_secret(repo_root: Path) -> None:
    """The example in rules/ is commented out: ``check`` and the demo run without a secret."""
    assert load_config(repo_root).webhooks == ()
