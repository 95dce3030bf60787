"""Environment settings (12-factor), read once at start-up by the composition root.

Secrets are ``SecretStr`` so that a settings object printed to a log shows ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_DATABASE_URL = "sqlite:///incident-bot.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    # the one Slack workspace (T…) served; commands, clicks and events for another are refused with 403
    slack_team_id: str | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL
    database_url: str = DEFAULT_DATABASE_URL
    # seconds a PostgreSQL call may wait for the server before its connection is cut (bot.storage.deadline)
    database_timeout: float = Field(default=10.0, gt=0)
    # Acknowledgements and resolutions clicked while the database is unreachable wait in this file
    # (bot.pending_actions) until it returns; default: beside a SQLite database, else the working directory
    pending_actions_file: Path | None = None
    ingest_token: SecretStr | None = None
    ingest_max_bytes: int = Field(default=1024 * 1024, gt=0)
    host: str = "0.0.0.0"  # all interfaces, as a container needs; 127.0.0.1 keeps the bot to this machine
    port: int = Field(default=3000, ge=0, le=65535)
    # connections serve holds at once (lowered to fit the open-file limit); see bot.http_limits
    http_max_connections: int = Field(default=1000, gt=0)
    bot_config_dir: Path | None = None
    evaluation_interval: str | None = None  # a duration such as "30s"; overrides the config file
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log shippers (bot.logs)
    prometheus_url: str | None = None  # pull the prometheus: queries of rules/*.yaml from this server
    # retry waits of the notification outbox (Slack, PagerDuty): exponential with jitter from base,
    # doubling per failed attempt up to cap (seconds); a server's Retry-After wins over both
    outbox_backoff_base: float = Field(default=1.0, gt=0)
    outbox_backoff_cap: float = Field(default=300.0, gt=0)
    # email (bot.notify.email): smtp://user:password@host:587 (STARTTLS) or smtps://…:465; the whole URL
    # is a secret because it holds the password. SMTP_FROM is the sender address.
    smtp_url: SecretStr | None = None
    smtp_from: str | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value  # LOG_LEVEL=info is INFO

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_in_any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    def pending_actions_path(self) -> Path:
        """Where kept clicks wait: ``PENDING_ACTIONS_FILE``, else beside a SQLite database file
        (so each database has its own), else ``incident-bot-pending-actions.jsonl`` here."""
        if self.pending_actions_file is not None:
            return self.pending_actions_file
        sqlite = make_url(self.database_url) if self.database_url.startswith("sqlite") else None
        if sqlite is not None and sqlite.database and sqlite.database != ":memory:":
            database = Path(sqlite.database)
            return database.with_name(database.name + ".pending-actions.jsonl")
        return Path("incident-bot-pending-actions.jsonl")

    def secret_values(self) -> list[str]:
        """Every secret this process was given, for the log to redact (bot.logs)."""
        secrets = (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.pagerduty_routing_key,
            self.ingest_token,
        )
        found = [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]
        return found + self._smtp_secrets()

    def _smtp_secrets(self) -> list[str]:
        """The SMTP URL and its password, as written (percent-encoded) and decoded: a log line
        may quote either (smtplib's errors, a URL echoed by a library)."""
        url = self.smtp_url.get_secret_value() if self.smtp_url is not None else ""
        try:
            password = urlsplit(url).password or ""
        except ValueError:  # an unparsable URL (bad port): the URL itself is still hidden
            password = ""
        return [value for value in dict.fromkeys((url, password, unquote(password))) if value]
