"""Use cases: load → decide (pure core) → save → enqueue notifications, one transaction each.

This is the only layer that does I/O around the pure core; the HTTP handlers, the Slack
listeners and the scheduler jobs all call in here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.alerts import lifecycle, store
from bot.alerts.lifecycle import SYSTEM_ACTOR, Alert, EventKind, Transition
from bot.clock import Clock
from bot.config.conditions import ConditionEvaluator
from bot.config.loader import Config
from bot.config.promql_windows import pulled_terms
from bot.errors import ActionRefused
from bot.escalation.sweep import sweep
from bot.evaluation.evaluate import PassInput, evaluate, models_to_evaluate, names_read, window_needs
from bot.evaluation.members import Members
from bot.evaluation.quiet import QuietModels
from bot.evaluation.rule_errors import RuleErrors
from bot.evaluation.schedule import EvaluationSchedule
from bot.evaluation.shares import Share
from bot.evaluation.windows import WindowNeeds, WindowSeries
from bot.incident_actions import IncidentActions
from bot.incidents import store as incident_store
from bot.incidents import tracker
from bot.incidents.incident import Incident
from bot.metrics import store as metric_store
from bot.metrics.store import Point
from bot.metrics.window_cache import WindowCache
from bot.notify.dispatch import Dispatcher, Hold, no_hold
from bot.notify.notifier import THREAD_NOTE, ThreadNote
from bot.notify.outbox import enqueue
from bot.notify.routing import CHAT_CHANNELS, Routes, every_channel
from bot.observability import Metrics, times_evaluation
from bot.pending_actions import PendingAction, PendingActions, Subject, Verb
from bot.recording import Recorder
from bot.retention import history_metrics
from bot.silences import store as silence_store
from bot.silences.silence import Silence
from bot.silences.silence import silenced as is_silenced
from bot.slo.service import slo_transitions
from bot.storage.database import session as open_session

log = logging.getLogger(__name__)
_T = TypeVar("_T")

__all__ = ["AlertService", "ExternalPlan", "PassResult", "every_channel", "no_hold"]

ExternalPlan = Callable[[Config, Mapping[str, Alert], Mapping[str, datetime], datetime], list[Transition]]
"""Pure decisions about alerts fired elsewhere (Alertmanager): given the configuration, the open
alerts by key, the keys' last resolutions and now, the transitions to record."""


PASS_TRIES = 3
"""Times a scheduled evaluation is tried when it keeps losing races, before the next tick."""


@dataclass(frozen=True)
class PassResult:
    transitions: list[Transition]
    conflicts: int


class AlertService(IncidentActions):
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        config: Callable[[], Config],
        router: Routes,
        *,
        hold: Hold = no_hold,
        metrics: Metrics | None = None,
        pending: PendingActions | None = None,
        members: Members | None = None,
    ) -> None:
        super().__init__(engine, clock, config, Recorder(Dispatcher(router, hold=hold)))
        self.pending = pending or PendingActions()
        """Clicks kept while the database was away (:mod:`bot.pending_actions`)."""
        self._channels = router.channels
        self._evaluator = ConditionEvaluator()
        self._windows = WindowCache()
        """The samples windowed conditions read, kept between passes (:mod:`bot.metrics.window_cache`)."""
        self._quiet = QuietModels()
        """Models the last passes found nothing to change for (:mod:`bot.evaluation.quiet`)."""
        self._open_alerts = store.OpenAlerts()
        """The open alerts as the last pass read them: a pass decodes only those that changed."""
        self.members = members or Members(engine, clock)
        """This process among the evaluating processes on the database (:mod:`bot.evaluation.members`)."""
        self._share = Share(self.members.name)
        """The models this process evaluates among the live members (:mod:`bot.evaluation.shares`)."""
        self._passes = threading.Lock()
        """One pass decides at a time: the scheduler runs one, but a test or the CLI may call in too."""
        self.rule_errors = RuleErrors(metrics)
        """Rules that failed in the latest evaluation pass, for ``/healthz``."""
        self._metrics = metrics
        self._incident_verbs: dict[Verb, Callable[..., Incident]] = {
            "acknowledge": self.acknowledge_incident,
            "resolve": self.resolve_incident,
            "release": self.release_incident,
            "still_on_it": self.still_on_it,
        }

    def ingest(self, points: Iterable[Point]) -> int:
        with open_session(self._engine) as s, s.begin():
            return metric_store.record(s, points)

    def ingest_pulled(self, points: Iterable[Point]) -> int:
        """Values pulled from Prometheus, whose history is Prometheus': sample rows only for the
        metrics a window evaluated here or an SLO reads (issue 20); the rest, the values of the
        windowed terms Prometheus evaluates among them, keep their newest value and the one before."""
        needed = history_metrics(self._config())
        with open_session(self._engine) as s, s.begin():
            return metric_store.record(s, points, history=needed.__contains__)

    def apply_external(self, plan: ExternalPlan, *, resolved_since: datetime) -> list[Transition]:
        """Record alerts another system decided (Alertmanager's webhook), like an evaluation pass:
        ``plan`` sees the open alerts and the last resolutions since ``resolved_since``, and its
        transitions are saved with their notifications in one transaction.

        Two deliveries of one notification at once (Alertmanager in HA) race for the unique open
        key; the loser re-reads and plans again, finds the alert open, and records nothing.
        Raises :class:`store.ConcurrentChange` if that keeps happening, so the caller can ask
        for a retry instead of losing the notification.
        """

        def attempt(s: Session) -> list[Transition]:
            config = self._config()
            now = self._clock.now()
            changes = plan(config, store.open_alerts(s), store.last_fired_resolutions(s, since=resolved_since), now)
            silences = silence_store.active(s, now=now)
            for change in changes:
                self._recorder.alert(s, change, config, now, silences)
            return changes

        return self._retried(attempt, gives_up="alerts from Alertmanager keep changing under us; retry")

    def evaluate_on_schedule(self, schedule: EvaluationSchedule) -> PassResult | None:
        """The scheduler's evaluation job: evaluate as of the tick this run belongs to (``None``
        when that tick was already evaluated); ticks skipped entirely are logged and counted."""
        tick = schedule.next(self._clock.now())
        if tick is None:
            return None
        if tick.missed:
            log.warning(
                "missed %d evaluation(s) before %s: the previous pass ran too long or the scheduler was late",
                tick.missed,
                tick.at.isoformat(),
            )
            if self._metrics:
                self._metrics.evaluations_missed(tick.missed)
        # a pass that loses a race (a click or another evaluator changed an alert it decided on)
        # is rolled back whole: it decides again at once from fresh data, as a sweep does, where
        # waiting for the next tick held every other transition of the pass back an interval
        for _ in range(PASS_TRIES):
            result = self.evaluate_once(at=tick.at)
            if not result.conflicts:
                return result
        at = tick.at.isoformat()
        log.warning("the evaluation as of %s lost %d races in a row; the next tick decides again", at, PASS_TRIES)
        return result

    @times_evaluation
    def evaluate_once(self, *, at: datetime | None = None) -> PassResult:
        """One evaluation pass over every rule and this process's share of the models as of ``at``
        (the pass's tick; default now), saved atomically with its notifications.

        If another replica changed an alert meanwhile, the pass is rolled back and reported as
        a conflict; the scheduled pass decides again at once from fresh data, so nothing is lost
        or doubled.
        """
        config = self._config()
        now = at or self._clock.now()
        longest_cooldown = max((r.cooldown for r in config.rules), default=timedelta(0))
        pulled = pulled_terms(config)
        with open_session(self._engine) as s, s.begin():
            self._take_share(s)
            samples = metric_store.latest(
                s, at=now, lookback=config.settings.stale_after, models=self._shared(config), names=names_read(config)
            )
            if self._metrics:
                mine = sum(model in self._share for model in models_to_evaluate(config, samples.keys()))
                self._metrics.evaluation_share(mine, len(self._share.members))
            data = PassInput(
                config=config,
                samples=samples,
                open_alerts=self._open_alerts.read(s),
                last_resolved=store.last_fired_resolutions(s, since=now - longest_cooldown),
                windows=self._window_samples(s, window_needs(config, pulled=pulled), now),
                pulled=pulled,
            )
            with self._passes:
                transitions = evaluate(
                    data,
                    now=now,
                    evaluator=self._evaluator,
                    errors=self.rule_errors,
                    quiet=self._quiet,
                    share=self._share,
                )
            evaluators = len(self._share.members)
            return self._record_pass(s, transitions, config, now, "evaluation pass", evaluators=evaluators)

    def _shared(self, config: Config) -> list[str] | None:
        """The configured models of this process's share, when it shares them; ``None`` when it
        evaluates alone or models nobody configured are evaluated too (those are known only
        from their samples, so every sample is read and :func:`evaluate` skips the others')."""
        if len(self._share.members) == 1 or config.settings.accept_unknown_models:
            return None
        return [model for model in config.models if model in self._share]

    def _take_share(self, s: Session) -> None:
        """Read the live evaluators and take this process's share of the models. When the members
        changed, what the quiet models remembered is dropped: another member may have changed
        the alerts of models this one gains."""
        if self._share.update(self.members.live(s)):
            log.info("evaluating a share of the models among %d evaluators", len(self._share.members))
            self._quiet = QuietModels()

    def _window_samples(self, s: Session, needs: WindowNeeds, now: datetime) -> WindowSeries:
        """What the windowed terms of the rules read, in one query (none without such terms)."""
        if not needs:
            return {}
        spans = {key: (metric, *needs.ago_span(key, now)) for key, (metric, _) in needs.ago.items()}
        return self._windows.read(s, ranges=needs.ranges, spans=spans, now=now)

    def evaluate_slos_once(self) -> PassResult:
        """One pass over every SLO's burn rate (:mod:`bot.slo.service`), recorded like a rule pass:
        findings open, keep or auto-resolve alerts keyed ``slo:<label>:<model>``, in one transaction."""
        config = self._config()
        now = self._clock.now()
        with open_session(self._engine) as s, s.begin():
            return self._record_pass(s, slo_transitions(s, config, now), config, now, "SLO pass")

    def _record_pass(
        self,
        s: Session,
        transitions: list[Transition],
        config: Config,
        now: datetime,
        what: str,
        *,
        evaluators: int = 0,
    ) -> PassResult:
        """Record a pass's transitions in the caller's transaction, or roll it all back if another
        replica changed an alert meanwhile: a rule pass is tried again at once
        (:meth:`evaluate_on_schedule`), an SLO pass at its next run. A rule pass
        (one of ``evaluators`` sharing the models) folds a rule breaching on many models at once
        into one storm incident; an SLO pass (``evaluators`` 0) does not."""
        try:
            silences = silence_store.active(s, now=now)
            stormy = tracker.storms(s, transitions, config, now, evaluators=evaluators) if evaluators else set()
            self._recorder.whole_pass_of(s, transitions, config, now, silences, storms=stormy)
        except store.ConcurrentChange as exc:
            s.rollback()
            log.info("%s lost a race and was rolled back: %s", what, exc)
            return PassResult([], conflicts=1)
        return PassResult(transitions, conflicts=0)

    def escalate_due(self, limit: int = 500) -> int:
        """Run every escalation step that is due (:mod:`bot.escalation.sweep`); return how many ran.
        Clicks kept while the database was away are applied first, so no step runs on an incident
        someone acknowledged meanwhile; if they cannot be (still away), nothing is swept."""
        self.apply_pending_actions()
        config = self._config()
        now = self._clock.now()

        def attempt(s: Session) -> list[timedelta]:
            record = lambda due, step: self._recorder.climbs(s, due, step, config, now)  # noqa: E731
            return sweep(s, now=now, limit=limit, record=record)

        # a click or a pass that changed one of the due incidents meanwhile refuses the whole
        # sweep: read again at once rather than a tick later (a second per lost race, under 20
        # clicks a second on SQLite, which has no row locks to make the sweep and a click take turns)
        try:
            late = self._retried(attempt, gives_up="incidents kept changing under the sweep")
        except store.ConcurrentChange as exc:
            log.info("escalation sweep lost its race three times and will retry next tick: %s", exc)
            return 0
        if self._metrics:
            self._metrics.escalations_ran(late)
        return len(late)

    def keep_for_later(self, action: PendingAction) -> None:
        """Keep a click the database could not take; raises ``OSError`` if it cannot be kept."""
        self.pending.keep(action)

    def apply_pending_actions(self) -> int:
        """Apply the kept clicks (raises while the database is still away); return how many."""
        return self.pending.replay(
            lambda kept: self.apply(kept.subject, kept.target, kept.verb, actor=kept.actor, at=kept.at)
        )

    def apply(
        self, subject: Subject, target: int, verb: Verb, *, actor: str, at: datetime | None = None
    ) -> Alert | Incident:
        """A person's ``verb`` on an alert or a whole incident: a Slack click now, or one kept while
        the database was away (taken ``at``). Raises as :meth:`acknowledge` and
        :meth:`acknowledge_incident` do."""
        if subject == "incident":
            return self._incident_verbs[verb](target, actor=actor, at=at)
        if verb not in ("acknowledge", "resolve"):
            raise ActionRefused(f"An alert cannot be {verb.replace('_', ' ')}d; only its incident can.")
        on_alert = self.acknowledge if verb == "acknowledge" else self.resolve
        return on_alert(target, actor=actor, at=at)

    def overdue_escalations(self, *, grace: timedelta = timedelta(seconds=30)) -> list[tuple[int, str, datetime]]:
        """The watchdog: escalations whose deadline passed more than ``grace`` ago and did not run."""
        with open_session(self._engine) as s:
            overdue = incident_store.overdue_escalations(s, before=self._clock.now() - grace)
        for incident_id, group, deadline in overdue:
            log.warning(
                "escalation of incident %s (%s) is overdue: it was due at %s", incident_id, group, deadline.isoformat()
            )
        return overdue

    def acknowledge(self, alert_id: int, *, actor: str, at: datetime | None = None) -> Alert:
        return self._act(alert_id, lifecycle.acknowledge, actor, at)

    def resolve(self, alert_id: int, *, actor: str, at: datetime | None = None) -> Alert:
        return self._act(alert_id, lifecycle.resolve, actor, at)

    def _act(self, alert_id: int, action: Callable[..., Transition], actor: str, at: datetime | None) -> Alert:
        """Apply a person's action, taken ``at`` (default now; earlier for a click kept while the
        database was away). Raises ActionRefused (with the reason) or LookupError.

        Two people acting at once: the optimistic version check lets one write win; the loser
        re-reads and is refused with what happened ("already acknowledged by …").
        """

        def attempt(s: Session) -> Alert:
            current = store.get(s, alert_id)
            if current is None:
                raise LookupError(f"no alert with id {alert_id}")
            now = self._clock.now()
            change = action(current, actor=actor, now=at or now)
            return self._recorder.alert(s, change, self._config(), now, silence_store.active(s, now=now))

        return self._retried(attempt, gives_up=f"alert {alert_id} keeps changing; try again")

    # ------------------------------------------------------------------ shared with the other use cases

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def config(self) -> Callable[[], Config]:
        """The configuration in force (called per use case, so a reload applies at once)."""
        return self._config

    @property
    def recorder(self) -> Recorder:
        """The one :class:`Recorder` of this service: other use cases (:mod:`bot.incident_response`)
        record incident transitions through it, so their notifications are dispatched the same way."""
        return self._recorder

    @property
    def channels(self) -> tuple[str, ...]:
        """The notifier channels this bot delivers to (``slack``, ``log``, ``pagerduty`` …)."""
        return tuple(self._channels)

    def transaction(self, attempt: Callable[[Session], _T], *, gives_up: str) -> _T:
        """:meth:`_retried`, for the use cases of sibling modules (:mod:`bot.incident_review`)."""
        return self._retried(attempt, gives_up=gives_up)

    def silence(self, silence: Silence, *, note: ThreadNote | None = None) -> Silence:
        """Store the silence and, in the same transaction, queue ``note`` for its thread (on each
        chat channel: Slack, or the log without a Slack token)."""
        with open_session(self._engine) as s, s.begin():
            added = silence_store.add(s, silence)
            if note is None:
                return added
            for channel in [c for c in self._channels if c in CHAT_CHANNELS]:
                enqueue(
                    s,
                    channel=channel,
                    kind=THREAD_NOTE,
                    payload={"channel": note.channel, "thread_ts": note.thread_ts, "text": note.text},
                    idempotency_key=f"{channel}:silence-note:{added.id}",
                    now=self._clock.now(),
                    incident_id=note.incident_id,
                    alert_id=note.alert_id,
                )
            return added

    def unsilence(self, silence_id: int) -> bool:
        with open_session(self._engine) as s, s.begin():
            return silence_store.expire(s, silence_id, now=self._clock.now())

    def release_unmuted(self) -> int:
        """Notify alerts a silence kept quiet, now that no silence covers them (expiry un-mutes).

        Each is announced once, as a firing alert (with its page, if its severity pages): the
        announcement is recorded as a "fired" event with detail "silence ended", so it has an
        outbox entry afterwards and is no longer "never notified".
        """
        config = self._config()
        now = self._clock.now()
        released = 0
        with open_session(self._engine) as s, s.begin():
            silences = silence_store.active(s, now=now)
            try:
                for alert in silence_store.never_notified(s):
                    if is_silenced(silences, rule=alert.rule, model=alert.model, now=now):
                        continue
                    event = lifecycle.Event(EventKind.FIRED, SYSTEM_ACTOR, now, "silence ended")
                    self._recorder.alert(s, Transition(alert, event), config, now, silences)
                    released += 1
            except store.ConcurrentChange as exc:
                s.rollback()
                log.info("releasing silenced alerts lost a race and will retry: %s", exc)
                return 0
        return released
