"""``links:`` of rules and models: what loads, and the file:line errors of what does not."""

from __future__ import annotations

import pytest

from bot.config.link_schema import Link
from bot.config.loader import load_config
from tests.config.test_loader import MODEL, RULE, MakeDir, config_dir, line_of, the_problem

__all__ = ["config_dir"]  # a fixture, used by name


def with_model_links(links: str) -> str:
    return MODEL + "    links:\n" + links


def test_links_of_a_rule_and_a_model_load(config_dir: MakeDir) -> None:
    rule = RULE + "    links:\n      - {text: Traces, url: 'https://tempo.example/?s={model}'}\n"
    model = with_model_links("      - text: Logs\n        url: http://logs.example/\n")
    config = load_config(config_dir(rules=rule, models=model))
    assert config.rules[0].links == [Link(text="Traces", url="https://tempo.example/?s={model}")]
    model_config = config.models["fraud-detector-v2"]
    assert model_config.links == [Link(text="Logs", url="http://logs.example/")]
    assert "links" not in model_config.settings  # not a free-form setting for templates


@pytest.mark.parametrize(
    ("entry", "needle", "message"),
    [
        ("      - {text: Logs, url: 'https://l.example/{service}'}\n", "{service}", "unknown placeholder {service}"),
        ("      - {text: Logs, url: 'ftp://l.example/'}\n", "ftp://", "must start with http:// or https://"),
        ("      - {text: '  ', url: 'https://l.example/'}\n", "text: '  '", "a link needs a text"),
        ("      - {url: 'https://l.example/'}\n", "{url:", "text"),
        ("      - {text: Logs, url: 'https://l.example/', icon: x}\n", "icon", "icon"),
    ],
    ids=["placeholder", "scheme", "blank-text", "no-text", "unknown-key"],
)
def test_a_bad_link_names_its_file_and_line(config_dir: MakeDir, entry: str, needle: str, message: str) -> None:
    text = with_model_links("      - {text: Fine, url: 'https://ok.example/'}\n" + entry)
    problem = the_problem(config_dir(rules=RULE, models=text))
    assert (problem.file, problem.line) == ("rules/models.yaml", line_of(text, needle))
    assert message in problem.message
