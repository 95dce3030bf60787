"""The running configuration, swappable at run time (SIGHUP) without ever half-applying."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from bot.config.loader import Config, load_config
from bot.errors import ConfigError
from bot.logs import redact_also

log = logging.getLogger(__name__)


class ConfigHolder:
    def __init__(self, directory: Path, initial: Config | None = None) -> None:
        self.directory = directory
        self._config = initial or load_config(directory)
        self._lock = threading.Lock()
        redact_also(self._config.secret_values())

    def __call__(self) -> Config:
        return self._config

    def reload(self) -> bool:
        """Load the directory again; on any problem keep the running configuration and log why."""
        with self._lock:
            try:
                fresh = load_config(self.directory)
            except ConfigError as exc:
                log.error("configuration reload failed; keeping the running configuration:\n%s", exc)
                return False
            redact_also(fresh.secret_values())  # before anything can log them
            self._config = fresh
            log.info(
                "configuration reloaded from %s: %d rules, %d models",
                self.directory,
                len(fresh.rules),
                len(fresh.models),
            )
            return True
