"""Composition root: settings → database → configuration → service → notifiers → web app → scheduler.

No logic lives here; it only builds the parts and hands each one what it needs, so tests can
build the same bot with an injected clock, database and notifiers. The parts are the same in
every process model (see :mod:`bot.processes`): one ``serve`` runs the web app and the
background work (:func:`bot.jobs.background_work`); ``serve --web-only`` runs only the web app;
``worker`` runs only the background work.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from bot import retention
from bot.changes.api import change_routes
from bot.changes.log import ChangeLog
from bot.clock import Clock, SystemClock
from bot.config.defaults import default_config_dir
from bot.config.durations import parse_duration
from bot.config.holder import ConfigHolder
from bot.config.loader import Config
from bot.evaluation.members import BEAT_EVERY
from bot.evaluation.schedule import EvaluationSchedule
from bot.health import health_routes
from bot.incident_review import IncidentReview
from bot.jobs import Work, applying_kept_clicks, background_work, build_scheduler
from bot.memory import TRIM_EVERY
from bot.memory import trim as trim_memory
from bot.metrics.api import metric_routes
from bot.notify.email import EmailNotifier
from bot.notify.lanes import Lanes, announcing
from bot.notify.notifier import LogNotifier, Notifier
from bot.notify.outbox import Backoff, Outbox
from bot.notify.page_results import page_result_hook
from bot.notify.pagerduty import PagerDutyNotifier
from bot.notify.slack import SlackNotifier
from bot.notify.webhooks import WebhookNotifier
from bot.observability import Metrics, metrics_routes
from bot.pending_actions import PendingActions
from bot.queries import Queries
from bot.review.weekly import CHECK_EVERY, post_weekly_review
from bot.service import AlertService, every_channel
from bot.settings import Settings
from bot.sources.alertmanager_api import alertmanager_routes
from bot.sources.prometheus import prometheus_puller
from bot.storage.database import make_engine, migrate

if TYPE_CHECKING:  # the Slack app is imported where a web app is built (see Bot.app)
    from bot.slack import SlackApp

log = logging.getLogger(__name__)

ACK_REMINDER_EVERY = timedelta(seconds=15)
"""How often acknowledged incidents are checked for ``settings.ack_reminder`` (a no-op when unset)."""
SLO_INTERVAL = timedelta(seconds=60)
"""SLO burn rates move over minutes; the SLO pass runs at most this often (or at the evaluation interval)."""


@dataclass
class Bot:
    settings: Settings
    engine: Engine
    clock: Clock
    config: ConfigHolder
    service: AlertService
    outbox: Outbox
    lanes: Lanes
    scheduler: BackgroundScheduler
    build_app: Callable[[], Starlette]
    worker_app: Starlette
    """``incident-bot worker --port``'s app: only ``/healthz`` and ``/metrics``; its lifespan runs
    the background work."""

    @functools.cached_property
    def app(self) -> Starlette:
        """The HTTP app, built when first asked for. A worker never asks, so it never builds the
        Slack app nor loads Bolt's asynchronous stack (aiohttp and the rest: 15 MB of a worker's
        memory)."""
        return self.build_app()


@dataclass(frozen=True)
class WebOnly:
    """Build the web app without the background work: its lifespan starts neither the scheduler
    nor the delivery lanes, which ``incident-bot worker`` runs. ``index`` tells the web processes
    of one machine apart: each keeps the clicks the database could not take in its own journal
    (:mod:`bot.pending_actions` rewrites its file, so two processes must not share one)."""

    index: int = 0


def build_bot(
    settings: Settings,
    *,
    clock: Clock | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
    config_dir: Path | None = None,
    web_only: WebOnly | None = None,
    only: Work | None = None,
) -> Bot:
    """Everything a process runs, wired; ``only``: the half of the background work it does."""
    clock = clock or SystemClock()
    holder = ConfigHolder(config_dir or default_config_dir(settings))
    engine = make_engine(settings.database_url, call_timeout=settings.database_timeout)
    migrate(engine)
    metrics = Metrics(engine)  # one registry per bot: tests build several bots in one process
    chosen = notifiers if notifiers is not None else default_notifiers(settings, engine, holder, clock, metrics=metrics)
    metrics.watch_channels(chosen)
    journal = settings.pending_actions_path()
    if web_only is not None:
        journal = journal.with_name(f"{journal.name}.web-{web_only.index}")
    pending = PendingActions(journal)
    service = AlertService(engine, clock, holder, every_channel(list(chosen)), metrics=metrics, pending=pending)
    backoff = Backoff(base=settings.outbox_backoff_base, cap=settings.outbox_backoff_cap)
    on_result = page_result_hook(clock) if {"pagerduty", "slack"} <= set(chosen) else None
    outbox = Outbox(engine, clock, chosen, backoff=backoff, metrics=metrics, on_result=on_result)
    lanes = Lanes(outbox, engine)
    interval = (
        parse_duration(settings.evaluation_interval)
        if settings.evaluation_interval
        else holder().settings.evaluation_interval
    )
    schedule = EvaluationSchedule(interval)
    record_source_alerts = lambda plan: service.apply_external(plan, resolved_since=clock.now())  # noqa: E731
    puller = prometheus_puller(
        settings, holder, service.ingest_pulled, clock, alerts=record_source_alerts, metrics=metrics
    )
    scheduler = build_scheduler(
        only=only,
        evaluate=lambda: service.evaluate_on_schedule(schedule),
        evaluation_grid=schedule.tick_at(clock.now()),
        escalate=service.escalate_due,
        watchdog=service.overdue_escalations,
        release=service.release_unmuted,
        evaluation_interval=interval,
        extra=[
            *([puller.job()] if puller is not None else []),
            (service.members.beat, "evaluator-heartbeat", BEAT_EVERY),
            (service.evaluate_slos_once, "slo-evaluation", max(SLO_INTERVAL, interval)),
            (service.remind_acknowledged, "ack-reminder", ACK_REMINDER_EVERY),
            (trim_memory, "memory-trim", TRIM_EVERY),
            (lambda: retention.prune_samples(engine, holder(), clock.now()), "sample-retention", retention.EVERY),
            (
                lambda: post_weekly_review(engine, holder(), clock.now(), channels=list(chosen)),
                "weekly-review",
                CHECK_EVERY,
            ),
        ],
    )
    # a clean stop hands this process's models to the other evaluators at once
    scheduler.add_listener(lambda _event: service.members.leave(), EVENT_SCHEDULER_SHUTDOWN)
    app = functools.partial(
        build_web_app,
        settings=settings,
        service=service,
        holder=holder,
        clock=clock,
        scheduler=scheduler,
        lanes=lanes,
        engine=engine,
        metrics=metrics,
        outbox=outbox,
        sources=puller.health_report if puller is not None else None,
        web_only=web_only is not None,
    )
    worker_app = build_worker_app(
        status_routes(
            service=service,
            engine=engine,
            scheduler=scheduler,
            outbox=outbox,
            sources=puller.health_report if puller is not None else None,
            metrics=metrics,
        ),
        lanes=lanes,
        scheduler=scheduler,
        only=only,
    )
    return Bot(settings, engine, clock, holder, service, outbox, lanes, scheduler, app, worker_app)


def default_notifiers(
    settings: Settings, engine: Engine, holder: ConfigHolder, clock: Clock, *, metrics: Metrics | None = None
) -> dict[str, Notifier]:
    """Slack when a bot token is set, otherwise the log, so the bot runs without a workspace;
    PagerDuty when a routing key is set, by ``PAGERDUTY_ROUTING_KEY`` or in the configuration;
    one notifier per configured webhook (``webhooks:``); email when ``SMTP_URL`` is set (a
    malformed one, or no ``SMTP_FROM``, stops the start)."""
    notifiers: dict[str, Notifier] = {}
    if _secret(settings.slack_bot_token):
        drafts = IncidentReview(engine, clock, holder).draft  # postmortems in incident rooms (reads only)
        notifiers["slack"] = SlackNotifier.from_settings(
            settings, engine=engine, config=holder, clock=clock, metrics=metrics, drafts=drafts
        )
    else:
        log.warning("SLACK_BOT_TOKEN is not set: alerts are written to the log instead of Slack")
        notifiers["log"] = LogNotifier()
    if _secret(settings.pagerduty_routing_key) or _configured_routing_keys(holder()):
        notifiers["pagerduty"] = PagerDutyNotifier.from_settings(settings, metrics=metrics)
    else:
        log.warning("no PagerDuty routing key is set: P0/P1 alerts post to Slack but page no one")
    for hook in holder().webhooks:  # each its own lane; one added by a reload waits for a restart
        notifiers[hook.channel] = WebhookNotifier(hook.name, holder)
    if _secret(settings.smtp_url):
        email = EmailNotifier.from_settings(settings)
        notifiers["email"] = email
        log.info("email goes through %s from %s", email.target.shown(), settings.smtp_from)
    elif _configured_recipients(holder()):
        log.warning("SMTP_URL is not set: the email: recipients in the configuration are not emailed")
    return notifiers


def _configured_recipients(config: Config) -> bool:
    """Whether anyone would be emailed. A warning, not a ``check`` error: ``check`` reads the
    configuration without the environment, and one configuration serves a demo without SMTP too."""
    models, rules = config.models.values(), config.rules
    return bool(config.routing.reports.email) or any(m.email for m in models) or any(r.email for r in rules)


def _configured_routing_keys(config: Config) -> bool:
    steps = (step for policy in config.escalation.values() for step in policy)
    return any(step.pagerduty_routing_key for step in steps) or any(
        model.settings.get("pagerduty_routing_key") for model in config.models.values()
    )


def build_web_app(
    *,
    settings: Settings,
    service: AlertService,
    holder: ConfigHolder,
    clock: Clock,
    scheduler: BackgroundScheduler,
    lanes: Lanes,
    engine: Engine,
    metrics: Metrics | None = None,
    outbox: Outbox | None = None,
    sources: Callable[[], Mapping[str, Any]] | None = None,
    web_only: bool = False,
) -> Starlette:
    """The HTTP app; its lifespan runs the background work too unless ``web_only``, in which
    case it only applies the clicks this process kept while the database was away (the
    escalation job does that in the all-in-one process)."""
    from bot.slack import running as slack_running
    from bot.slack import slack_routes

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if web_only:
                await stack.enter_async_context(applying_kept_clicks(service))
                stack.enter_context(announcing(engine))  # the worker's lanes deliver what clicks change
            else:
                stack.enter_context(background_work(lanes, scheduler))
            if slack_app is not None:  # the after-ack worker, and Socket Mode when SLACK_APP_TOKEN is set
                await stack.enter_async_context(
                    slack_running(slack_app, app_token=_secret_value(settings.slack_app_token))
                )
            yield

    routes = [
        *status_routes(
            service=service,
            engine=engine,
            scheduler=None if web_only else scheduler,
            outbox=outbox,
            sources=sources,
            metrics=metrics,
        ),
        *metric_routes(service=service, settings=settings, config=holder, clock=clock),
        *change_routes(changes=ChangeLog(engine), settings=settings, config=holder, clock=clock),
        *alertmanager_routes(service=service, settings=settings, clock=clock),
    ]
    slack_app = _slack_app(settings=settings, service=service, holder=holder, clock=clock, engine=engine)
    if slack_app is not None and _secret(settings.slack_signing_secret):
        routes += slack_routes(slack_app)
    return Starlette(routes=routes, lifespan=lifespan)


def build_worker_app(
    routes: list[BaseRoute], *, lanes: Lanes, scheduler: BackgroundScheduler, only: Work | None = None
) -> Starlette:
    """The worker's own listener, for its supervisor and Prometheus: in the split, rule errors,
    the metric sources' health and the evaluation and delivery counters live in the worker, so
    only it can report them."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        with background_work(lanes, scheduler, only=only):
            yield

    return Starlette(routes=routes, lifespan=lifespan)


def status_routes(
    *,
    service: AlertService,
    engine: Engine,
    scheduler: BackgroundScheduler | None,
    outbox: Outbox | None,
    sources: Callable[[], Mapping[str, Any]] | None,
    metrics: Metrics | None,
) -> list[BaseRoute]:
    """``/healthz`` and ``/metrics`` (when there are ``metrics``): what every listening process answers."""
    routes: list[BaseRoute] = [
        *health_routes(service=service, engine=engine, scheduler=scheduler, outbox=outbox, sources=sources)
    ]
    if metrics:
        routes += metrics_routes(metrics)
    return routes


def _slack_app(
    *, settings: Settings, service: AlertService, holder: ConfigHolder, clock: Clock, engine: Engine
) -> SlackApp | None:
    """The Slack app, when the bot can both speak (a bot token) and hear (a signing secret for
    HTTP, or an app token for Socket Mode); None, and a log line saying why, otherwise."""
    can_hear_slack = _secret(settings.slack_signing_secret) or _secret(settings.slack_app_token)
    if not (_secret(settings.slack_bot_token) and can_hear_slack):
        log.info("SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET or SLACK_APP_TOKEN not set: Slack requests are not served")
        return None
    if not _secret(settings.slack_signing_secret):
        log.info("SLACK_SIGNING_SECRET not set: Slack is answered over Socket Mode only, not POST /slack/events")
    from bot.slack import build_slack_app

    return build_slack_app(settings=settings, service=service, queries=Queries(engine), config=holder, clock=clock)


def _secret(value: SecretStr | None) -> bool:
    return value is not None and bool(value.get_secret_value())


def _secret_value(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if _secret(value) and value is not None else None
