"""What hosted and multi-tenant Prometheus-compatible APIs need: headers (Mimir's and Cortex's
``X-Scope-OrgID``), a bearer token from the environment, TLS against a CA file (issue 20, point 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.config.loader import ConfigError, load_config
from bot.sources.prometheus import PrometheusPuller
from tests.emulators.smtp_server import self_signed
from tests.sources.helpers import NOW, config_dir
from tests.sources.test_prometheus_client import FakePrometheus, Recorder, vector


def section(extra: str) -> str:
    return (
        "prometheus:\n  interval: 5s\n  timeout: 2s\n"
        + extra
        + "  queries:\n    - {model: support-bot, metric: daily_cost_usd, query: cost}\n"
    )


def test_headers_and_the_bearer_token_are_sent_with_every_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIMIR_TENANT", "team-ml")
    monkeypatch.setenv("PROMETHEUS_TOKEN", "s3cret-token")
    config = load_config(
        config_dir(
            tmp_path,
            section(
                "  headers: {X-Scope-OrgID: '${MIMIR_TENANT}', X-Source: incident-bot}\n"
                "  bearer_token: ${PROMETHEUS_TOKEN}\n"
            ),
        )
    )
    fake = FakePrometheus({"cost": (200, vector(({}, "12")), 0)})
    try:
        recorder = Recorder()
        PrometheusPuller(fake.url, lambda: config, recorder, FrozenClock(NOW)).run_once()
    finally:
        fake.close()

    [sent] = fake.headers
    assert sent["x-scope-orgid"] == "team-ml" and sent["x-source"] == "incident-bot"
    assert sent["authorization"] == "Bearer s3cret-token"
    assert recorder.points == [("support-bot", "daily_cost_usd", NOW, 12.0)]
    assert "s3cret-token" not in repr(config.prometheus), "the token is a secret in the loaded configuration"


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("  bearer_token: s3cret-token\n", "bearer_token must name an environment variable"),
        ("  bearer_token: ${NOT_SET_ANYWHERE}\n", "NOT_SET_ANYWHERE is not set"),
        ("  headers: {Authorization: Basic eA==}\n", "not an Authorization header"),
        ("  headers: {'X Bad': v}\n", "X Bad"),
        ("  ca_file: /nowhere/ca.pem\n", "ca_file /nowhere/ca.pem is not a readable file"),
    ],
)
def test_a_mistake_in_access_settings_is_named_at_load(tmp_path: Path, extra: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(config_dir(tmp_path, section(extra)))
    assert says in str(raised.value)


def test_https_is_verified_against_the_ca_file(tmp_path: Path) -> None:
    server_tls, _ = self_signed(tmp_path)
    fake = FakePrometheus({"cost": (200, vector(({}, "7")), 0)}, tls=server_tls)
    try:
        trusting = load_config(config_dir(tmp_path / "a", section(f"  ca_file: {tmp_path / 'cert.pem'}\n")))
        recorder = Recorder()
        [worked] = PrometheusPuller(fake.url, lambda: trusting, recorder, FrozenClock(NOW)).run_once()
        assert worked.error is None and recorder.points == [("support-bot", "daily_cost_usd", NOW, 7.0)]

        untrusting = load_config(config_dir(tmp_path / "b", section("")))
        puller = PrometheusPuller(fake.url, lambda: untrusting, Recorder(), FrozenClock(NOW))
        assert puller.run_once() == [], "an unverified server is unreachable: nothing is stored"
        assert "CERTIFICATE_VERIFY_FAILED" in str(puller.health["support-bot/daily_cost_usd"].last_error)
    finally:
        fake.close()
