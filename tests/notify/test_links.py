"""Which links an alert shows (:mod:`bot.notify.links`): order, ``{model}``, de-duplication."""

from __future__ import annotations

from bot.config.loader import Config, load_config
from bot.notify.links import SOURCE_URL, Link, alert_links, dashboard_of, distinct, from_payload, to_payload
from tests.config.test_loader import MakeDir, config_dir

__all__ = ["config_dir"]  # a fixture, used by name

RULES = """\
metrics:
  - name: p99_latency_ms
rules:
  - name: latency_spike
    condition: p99_latency_ms > 5000
    severity: P1
    title: "Latency for {model}"
    links:
      - {text: Traces, url: "https://tempo.example/search?service={model}"}
      - {text: Grafana again, url: "https://grafana.example/d/{model}"}
"""
MODELS = """\
models:
  - name: fraud-detector-v2
    channel: "#ml-alerts"
    dashboard: https://grafana.example/d/{model}
    links:
      - {text: "Logs of {model}", url: "https://logs.example/?q={model}"}
  - name: support-bot
    dashboard: grafana/support-bot
"""


def loaded(make: MakeDir) -> Config:
    return load_config(make(rules=RULES, models=MODELS))


def test_the_dashboard_comes_first_then_the_rules_links_then_the_models_with_the_model_filled(
    config_dir: MakeDir,
) -> None:
    links = alert_links(loaded(config_dir), model="fraud-detector-v2", rule="latency_spike", values={})
    assert links == [
        Link("Dashboard", "https://grafana.example/d/fraud-detector-v2"),
        Link("Traces", "https://tempo.example/search?service=fraud-detector-v2"),
        Link("Logs of fraud-detector-v2", "https://logs.example/?q=fraud-detector-v2"),
    ]  # the rule's "Grafana again" repeats the dashboard's URL: shown once, as the dashboard


def test_a_dashboard_that_is_not_a_web_url_is_left_off_and_an_unknown_rule_adds_nothing(config_dir: MakeDir) -> None:
    assert alert_links(loaded(config_dir), model="support-bot", rule="slo:latency", values={}) == []


def test_an_alertmanager_alerts_source_comes_last(config_dir: MakeDir) -> None:
    values = {SOURCE_URL: "http://prometheus:9090/graph?g0.expr=up", "instance": "pod-1"}
    links = alert_links(loaded(config_dir), model="unknown", rule="ModelDown", values=values)
    assert links == [Link("Source", "http://prometheus:9090/graph?g0.expr=up")]


def test_the_model_is_url_encoded_in_a_url(config_dir: MakeDir) -> None:
    config = loaded(config_dir)
    [link] = alert_links(config, model="a b&c", rule="x", values={SOURCE_URL: "https://s.example/"})
    assert link.url == "https://s.example/"
    traces = alert_links(config, model="a b&c", rule="latency_spike", values={})[0]
    assert traces.url == "https://tempo.example/search?service=a%20b%26c"


def test_payload_round_trip_skips_anything_malformed() -> None:
    links = [Link("Dashboard", "https://g.example/d"), Link("Logs", "https://l.example/")]
    assert from_payload(to_payload(links)) == links
    broken = [{"text": "x"}, "y", {"text": "", "url": "https://a.example"}, {"text": "js", "url": "javascript:1"}]
    assert from_payload(broken) == [] and from_payload(None) == []


def test_distinct_keeps_the_first_text_of_a_url_and_only_web_urls() -> None:
    found = distinct([Link("A", "https://x.example"), Link("B", "https://x.example"), Link("C", "ftp://x.example")])
    assert found == [Link("A", "https://x.example")]


def test_the_dashboard_alone_is_filled_and_web_only_for_the_webhooks(config_dir: MakeDir) -> None:
    config = loaded(config_dir)
    assert dashboard_of(config, "fraud-detector-v2") == "https://grafana.example/d/fraud-detector-v2"
    assert dashboard_of(config, "support-bot") is None and dashboard_of(config, "nobody") is None
