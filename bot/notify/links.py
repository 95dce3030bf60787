"""Which links an alert or an incident shows: the one place that decides it for every channel.

Slack shows them as buttons (:mod:`bot.notify.slack_blocks`), PagerDuty as the trigger event's
``links`` (:mod:`bot.notify.pagerduty`, from the outbox payload :mod:`bot.notify.dispatch`
writes), so a person gets the same dashboard from the page and from the channel. The order is
the model's ``dashboard:`` first (the link people reach for), then the rule's ``links:``, the
model's ``links:``, and last the page an Alertmanager alert came from (its ``generatorURL``,
kept in the alert's values under :data:`SOURCE_URL`). ``{model}`` is filled in every URL and
text; a URL given twice is shown once, with the first text. Only http(s) URLs are kept: Slack
refuses a whole message over one bad button URL, and ``dashboard:`` is free text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from bot.config.loader import Config

SOURCE_URL = "am_generator_url"
"""The alert value holding an Alertmanager alert's ``generatorURL`` (``am_`` values are bookkeeping,
not shown as metric values)."""
SOURCE_TEXT = "Source"
DASHBOARD_TEXT = "Dashboard"
MAX_URL = 3000
"""Slack's limit for a button's URL; a longer one is left out rather than cut into a broken link."""


@dataclass(frozen=True)
class Link:
    text: str
    url: str


def alert_links(config: Config, *, model: str, rule: str, values: Mapping[str, object]) -> list[Link]:
    """The links of an alert of ``rule`` on ``model`` (for an incident: of its first alert)."""
    known = config.models.get(model)
    configured = config.rule(rule)
    found: list[Link] = []
    dashboard = dashboard_of(config, model)
    if dashboard is not None:
        found.append(Link(DASHBOARD_TEXT, dashboard))
    found += [Link(link.text, link.url) for link in (configured.links if configured is not None else [])]
    found += [Link(link.text, link.url) for link in (known.links if known is not None else [])]
    source = values.get(SOURCE_URL)
    if isinstance(source, str):
        found.append(Link(SOURCE_TEXT, source))
    return distinct(_filled(link, model) for link in found)


def dashboard_of(config: Config, model: str) -> str | None:
    """The model's ``dashboard:`` with ``{model}`` filled, if it is a web URL (the webhooks'
    ``links.dashboard`` too)."""
    known = config.models.get(model)
    url = _filled(Link(DASHBOARD_TEXT, known.dashboard), model).url if known and known.dashboard else None
    return url if url is not None and is_web_url(url) else None


def distinct(links: Iterable[Link]) -> list[Link]:
    """The web links among ``links``, each URL once (its first text wins)."""
    seen: set[str] = set()
    kept: list[Link] = []
    for link in links:
        if link.url in seen or not is_web_url(link.url):
            continue
        seen.add(link.url)
        kept.append(link)
    return kept


def is_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= MAX_URL


def to_payload(links: Sequence[Link]) -> list[dict[str, str]]:
    """JSON for an outbox payload's ``links``."""
    return [{"text": link.text, "url": link.url} for link in links]


def from_payload(value: object) -> list[Link]:
    """An outbox payload's ``links`` back as links; anything malformed (an older row) is skipped."""
    if not isinstance(value, list):
        return []
    found = [
        Link(str(item["text"]), str(item["url"]))
        for item in value
        if isinstance(item, Mapping) and item.get("text") and isinstance(item.get("url"), str)
    ]
    return distinct(found)


def _filled(link: Link, model: str) -> Link:
    return Link(link.text.replace("{model}", model), link.url.replace("{model}", quote(model, safe="")))
