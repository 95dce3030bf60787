"""Keeping incidents in step with their alerts: what each alert change does to its incident.

The decisions are :mod:`bot.incidents.incident`'s (pure); this module reads what they need in
the caller's transaction and returns the transitions, which the service saves with their pages.
The database's unique open-group index settles two replicas opening the same group's incident
at once: the loser's pass rolls back and decides again next tick.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from bot.alerts.lifecycle import Alert, AlertState, EventKind, Transition
from bot.config.choices import alert_channel
from bot.config.loader import Config
from bot.incidents import incident as core
from bot.incidents import store
from bot.incidents.incident import Incident, IncidentTransition
from bot.storage.tables import AlertRow, IncidentRow


def place(session: Session, alert: Alert, config: Config, now: datetime, *, storm: bool) -> IncidentTransition:
    """``alert`` fired: it joins its group's open incident or opens one (a storm's, if ``storm``)."""
    group = group_of(alert, config, storm=storm)
    current = store.open_for_group(session, group.key)
    return core.join(current, alert, now=now) if current is not None else group.opened_by(alert, now=now)


@dataclass(frozen=True)
class Group:
    """Where a firing alert belongs: its group's (or its storm's) key, labels and channel."""

    key: str
    labels: dict[str, str]
    channel: str
    storm: bool

    def opened_by(self, alert: Alert, *, now: datetime) -> IncidentTransition:
        """The group's new incident, opened by ``alert``."""
        if self.storm:
            return core.open_storm([alert], rule=alert.rule, channel=self.channel, now=now)
        return core.open_with(alert, key=self.key, labels=self.labels, channel=self.channel, now=now)


def group_of(alert: Alert, config: Config, *, storm: bool) -> Group:
    channel = alert_channel(config, alert.rule, alert.model)
    if storm:
        return Group(core.storm_key(alert.rule, channel), {"rule": alert.rule}, channel, storm=True)
    key, labels = core.group_key(alert, group_by=config.settings.group_by, channel=channel)
    return Group(key, labels, channel, storm=False)


def after_close(session: Session, alert: Alert, *, actor: str, now: datetime) -> IncidentTransition | None:
    """One of the incident's alerts resolved (it is saved): the incident resolves with its last."""
    current = _incident_of(session, alert)
    if current is None:
        return None
    still_open = sum(store.open_alert_states(session, current.id or 0).values())
    return core.alert_closed(current, still_open=still_open, actor=actor, now=now)


def after_acknowledge(session: Session, alert: Alert, *, actor: str, now: datetime) -> IncidentTransition | None:
    """One alert was acknowledged (it is saved): once every open alert of its incident is, so is
    the incident, and its climb stops."""
    current = _incident_of(session, alert)
    if current is None or current.state is not core.IncidentState.FIRING:
        return None
    if store.open_alert_states(session, current.id or 0).get(AlertState.FIRING):
        return None
    return core.acknowledge(current, actor=actor, now=now)


def storms(
    session: Session, changes: Iterable[Transition], config: Config, now: datetime, *, evaluators: int = 1
) -> set[tuple[str, str]]:
    """``(rule, channel)`` pairs whose new alerts in this pass fold into a storm incident: an open
    storm for them exists, or together with the alerts of that rule that opened incidents in the
    last ``group_wait`` they are more than ``settings.storm_threshold``.

    A pass that evaluated one of several ``evaluators``' shares (:mod:`bot.evaluation.shares`)
    saw about that fraction of the new alerts, while the others' passes run at the same tick and
    their incidents are not visible yet: it counts its own new alerts that many times over. Under
    that estimate a breach folds as one process would fold it; a small breach whose models happen
    to fall in one share may fold one threshold early, which costs a storm message, not a flood."""
    firing = Counter(
        (c.alert.rule, alert_channel(config, c.alert.rule, c.alert.model))
        for c in changes
        if c.event.kind is EventKind.FIRED and c.alert.incident_id is None
    )
    out: set[tuple[str, str]] = set()
    since = now - config.settings.group_wait
    for (rule, channel), new in firing.items():
        ongoing = store.open_for_group(session, core.storm_key(rule, channel)) is not None
        seen = new * evaluators + _recent_incidents(session, rule, channel, since=since)
        many = seen > config.settings.storm_threshold
        if ongoing or many:
            out.add((rule, channel))
    return out


def _recent_incidents(session: Session, rule: str, channel: str, *, since: datetime) -> int:
    """Incidents of ``channel`` opened since ``since`` by an alert of ``rule`` (storms excluded)."""
    query = (
        select(func.count(func.distinct(AlertRow.incident_id)))
        .select_from(AlertRow)
        .join(IncidentRow, col(IncidentRow.id) == AlertRow.incident_id)
        .where(AlertRow.rule == rule, IncidentRow.channel == channel, col(IncidentRow.storm_rule).is_(None))
        .where(col(IncidentRow.opened_at) >= since)
    )
    return int(session.exec(query).one())


def _incident_of(session: Session, alert: Alert) -> Incident | None:
    return store.get(session, alert.incident_id) if alert.incident_id is not None else None
