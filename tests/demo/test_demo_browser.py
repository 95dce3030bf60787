"""``incident-bot demo`` in a real headless browser: Debian's Chromium driven by Playwright.

The demo's parts run in this process on free ports (sandbox, bot under uvicorn, metric feed at
4x speed). The browser loads the sandbox page, waits for the replayed incident's first alert,
clicks Acknowledge, and waits until the message says who acknowledged it and the button is
gone: the click travelled page → sandbox → signed ``block_actions`` → bot → database → outbox
→ ``chat.update`` → sandbox → page. It also watches a page reach the PagerDuty panel and the
acknowledge and resolve that clicks send after it, and opens the App Home tab.

Without ``/usr/bin/chromium`` (or the ``playwright`` package) the tests are skipped with the
reason; ``REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns that skip into a failure. Playwright
only drives the system's Chromium; ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.alerts.lifecycle import AlertState
from bot.demo.pagerduty_events import Event
from bot.demo.runner import DEMO_TOKEN, Demo, running_demo
from bot.demo.sandbox_ui import DEMO_USER
from bot.incidents import store as incident_store
from bot.incidents.incident import IncidentState
from bot.storage.database import session

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACK = 'button[data-action-id="incident_acknowledge"]'
RESOLVE = 'button[data-action-id="incident_resolve"]'


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with running_demo(port=0, sandbox_port=0, speed=4.0) as running:
        yield running


@pytest.fixture
def page(browser: Any, demo: Demo) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    try:
        yield opened
    finally:
        context.close()


def test_the_page_loads_an_alert_appears_and_acknowledge_updates_it(page: Any, demo: Demo) -> None:
    page.goto(demo.sandbox_url)
    assert page.title() == "incident-bot · Slack sandbox"
    page.locator("section.channel h2", has_text="#ml-alerts").wait_for()
    page.locator("section.channel h2", has_text="#llm-alerts").wait_for()

    button = page.locator(ACK).first
    button.wait_for(state="visible")  # the replayed latency spike fires within a few seconds at 4x
    incident_id = button.get_attribute("data-value")  # the root's buttons name the incident
    assert incident_id and incident_id.isdigit()
    message = page.locator("div.msg:not(.reply)", has=page.locator(f'{ACK}[data-value="{incident_id}"]'))
    ts = message.get_attribute("data-ts")
    button.click()

    this_message = page.locator(f'div.msg[data-ts="{ts}"]:not(.reply)')
    this_message.locator(".content", has_text="Acknowledged by @demo").first.wait_for()
    page.locator(f'{ACK}[data-value="{incident_id}"]').wait_for(state="detached")
    assert this_message.locator(RESOLVE).count() >= 1  # Resolve stays
    # the thread under the message records it too, and the database agrees: the demo user acted
    this_message.locator(".thread", has_text="Acknowledged by @demo").first.wait_for()
    with session(demo.bot.engine) as s:
        incident = incident_store.get(s, int(incident_id))
        alerts = incident_store.alerts(s, int(incident_id))
    assert incident is not None and incident.state is IncidentState.ACKNOWLEDGED
    assert incident.acknowledged_by == "U0DEMO"
    # every alert open when the incident was acknowledged was acknowledged with it; the replay keeps
    # going, and an alert that joins the acknowledged incident afterwards fires as itself
    acked_at = incident.acknowledged_at
    assert acked_at is not None
    open_then = [a for a in alerts if (a.fired_at or a.started_at) <= acked_at and a.state is not AlertState.RESOLVED]
    assert open_then and all(a.state is AlertState.ACKNOWLEDGED and a.acknowledged_by == "U0DEMO" for a in open_then)


def _accepted_trigger(event: Event) -> bool:
    return bool(event["body"]) and event["body"].get("event_action") == "trigger" and event["status"] == 202


def _paged_and_unacknowledged(demo: Demo) -> tuple[int, str]:
    """An incident the PagerDuty lane took a trigger for and nobody has acknowledged: (incident id,
    dedup key). Waits on the lane's events; another test may already have acknowledged the first."""
    for count in range(1, 50):
        dedup_key = demo.pagerduty.wait_for(_accepted_trigger, timeout=30, count=count)["body"]["dedup_key"]
        incident_id = int(dedup_key.split(":")[1])  # the key is incident:<id>:<opened-at>
        with session(demo.bot.engine) as s:
            incident = incident_store.get(s, incident_id)
        if incident is not None and incident.state is IncidentState.FIRING:
            return incident_id, dedup_key
    raise AssertionError("every incident paged was already acknowledged")


def test_a_page_shows_in_the_pagerduty_panel_and_acknowledge_and_resolve_follow_it(page: Any, demo: Demo) -> None:
    page.goto(demo.sandbox_url)
    incident_id, dedup_key = _paged_and_unacknowledged(demo)
    lane = page.locator("#pagerduty")
    trigger = lane.locator(f'li.pd-trigger[data-dedup-key="{dedup_key}"]')
    trigger.wait_for()
    assert trigger.locator(".pd-severity").inner_text() == "error"  # P1 on PagerDuty's scale
    assert trigger.locator(".pd-summary").inner_text().startswith("[P1] ")
    assert trigger.locator(".pd-key").inner_text() == dedup_key

    page.locator(f'{ACK}[data-value="{incident_id}"]').click()
    acknowledged = lane.locator(f'li.pd-acknowledge[data-dedup-key="{dedup_key}"]')
    acknowledged.wait_for()
    assert acknowledged.locator(".pd-summary").inner_text() == trigger.locator(".pd-summary").inner_text()
    page.locator(f'{RESOLVE}[data-value="{incident_id}"]').first.click()
    lane.locator(f'li.pd-resolve[data-dedup-key="{dedup_key}"]').wait_for()
    (incident,) = [i for i in demo.pagerduty.all_incidents if i.dedup_key == dedup_key]
    assert incident.status == "resolved" and incident.events[-2:] == ["acknowledge", "resolve"]


def test_the_home_tab_shows_the_view_the_bot_publishes(page: Any, demo: Demo) -> None:
    page.goto(demo.sandbox_url)
    page.locator("#tab-home").click()
    page.locator("#home-body .blk-header", has_text="Active alerts").wait_for()
    assert page.locator("#channels").is_hidden()
    assert page.locator("#tab-home").get_attribute("aria-selected") == "true"
    published = demo.sandbox.home_view(DEMO_USER)  # the bot verified the signed app_home_opened and published
    assert published is not None and published["type"] == "home"
    page.locator("#tab-channels").click()
    page.locator("section.channel h2", has_text="#ml-alerts").wait_for()
    assert page.locator("#home").is_hidden()


def test_the_page_renders_bot_text_as_text_never_as_html(page: Any, demo: Demo) -> None:
    """Metric labels reach the page inside mrkdwn; neither Slack's escapes nor raw markup may run."""
    client = WebClient(token=DEMO_TOKEN, base_url=demo.sandbox.base_url)
    hostile = '<img src=x onerror="window.pwned=1">'
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    client.chat_postMessage(
        channel="#ml-alerts",
        text="fallback",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": f"H {hostile}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*label* {escaped} `code` <@U0DEMO>"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<https://example.com|{escaped}>"}]},
        ],
    )
    page.goto(demo.sandbox_url)
    section = page.locator(".blk-section .mrkdwn", has_text="label").first
    section.wait_for()
    assert section.locator("b").inner_text() == "label"
    assert section.locator("code").inner_text() == "code"
    assert hostile in section.inner_text() and "@demo" in section.inner_text()
    assert hostile in page.locator(".blk-header", has_text="H <img").first.inner_text()
    link = page.locator(".blk-context a[href='https://example.com']").first
    assert link.inner_text() == hostile
    assert page.locator("img").count() == 0
    assert page.evaluate("window.pwned") is None
