"""Incidents in a rule test: the service's grouping (:mod:`bot.incidents`), kept in dictionaries.

The same pure core decides: an alert that fires joins its group's open incident or opens one,
a pass that would open more than ``storm_threshold`` incidents of one rule in one channel makes
a storm, an incident resolves with its last open alert and is acknowledged when all its open
alerts are. Escalation is not simulated, so an incident's severity is its alerts' worst.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from bot.alerts.lifecycle import AlertState, EventKind, Transition
from bot.config.choices import alert_channel
from bot.config.loader import Config
from bot.incidents import incident as core
from bot.incidents.incident import Incident, IncidentState


@dataclass
class IncidentBook:
    config: Config
    incidents: dict[str, Incident] = field(default_factory=dict)
    """Open incidents by group key."""
    members: dict[str, dict[str, AlertState]] = field(default_factory=dict)
    """Group key → its open alerts' keys and states."""
    opened: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(rule, channel, when) of each incident (not storm) opened, for storms' look back over ``group_wait``."""
    _storms: set[tuple[str, str]] = field(default_factory=set)

    def begin_pass(self, changes: Iterable[Transition], now: datetime) -> None:
        """Which rules storm in this pass, as :func:`bot.incidents.tracker.storms` decides."""
        firing = Counter(
            (c.alert.rule, self._channel(c.alert.rule, c.alert.model))
            for c in changes
            if c.event.kind is EventKind.FIRED
        )
        since = now - self.config.settings.group_wait
        self._storms = set()
        for (rule, channel), new in firing.items():
            recent = sum(1 for r, c, at in self.opened if (r, c) == (rule, channel) and at >= since)
            if core.storm_key(rule, channel) in self.incidents or new + recent > self.config.settings.storm_threshold:
                self._storms.add((rule, channel))

    def record(self, change: Transition, now: datetime) -> None:
        alert, kind = change.alert, change.event.kind
        if kind is EventKind.FIRED:
            self._place(change, now)
            return
        key = self._group_of(alert.key)
        if key is None:
            return
        if not alert.state.is_open:
            del self.members[key][alert.key]
            if not self.members[key]:
                del self.members[key], self.incidents[key]
        elif kind is EventKind.ACKNOWLEDGED:
            self.members[key][alert.key] = alert.state
            if set(self.members[key].values()) == {AlertState.ACKNOWLEDGED}:
                incident = self.incidents[key]
                if incident.state is IncidentState.FIRING:
                    self.incidents[key] = core.acknowledge(incident, actor=change.event.actor, now=now).incident

    def open_incidents(self) -> list[tuple[Incident, list[str]]]:
        return sorted(((self.incidents[k], sorted(m)) for k, m in self.members.items()), key=lambda pair: pair[1])

    def _place(self, change: Transition, now: datetime) -> None:
        alert = change.alert
        channel = self._channel(alert.rule, alert.model)
        if (alert.rule, channel) in self._storms:
            key, labels = core.storm_key(alert.rule, channel), {"rule": alert.rule}
        else:
            key, labels = core.group_key(alert, group_by=self.config.settings.group_by, channel=channel)
        current = self.incidents.get(key)
        if current is not None:
            self.incidents[key] = core.join(current, alert, now=now).incident
        elif key == core.storm_key(alert.rule, channel):
            self.incidents[key] = core.open_storm([alert], rule=alert.rule, channel=channel, now=now).incident
        else:
            self.incidents[key] = core.open_with(alert, key=key, labels=labels, channel=channel, now=now).incident
            self.opened.append((alert.rule, channel, now))
        self.members.setdefault(key, {})[alert.key] = alert.state

    def _group_of(self, alert_key: str) -> str | None:
        return next((k for k, m in self.members.items() if alert_key in m), None)

    def _channel(self, rule: str, model: str) -> str:
        return alert_channel(self.config, rule, model)
