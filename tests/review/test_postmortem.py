"""The postmortem draft, measured from a fixture database (tests/review/incident_world.py): real
minutes, budget, cost and response times, not just headings; and ``incident-bot postmortem``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.incidents.incident import IncidentEventKind
from bot.incidents.timeline import timeline_text
from bot.notify.slack_text import escape_mrkdwn
from bot.queries import Queries
from bot.review.postmortem import render_markdown, summary_text
from tests.review.incident_world import ANA, BEN, MIN, ROOM, T0, World, build_world, resolve


@pytest.fixture
def world(tmp_path: Path) -> World:
    built = build_world(tmp_path)
    resolve(built)
    return built


def test_the_facts_are_measured_from_the_stored_samples_and_events(world: World) -> None:
    found = world.review.facts(world.incident_id, charts=False)
    assert found is not None
    facts, charts = found

    assert [(a.key, a.minutes) for a in facts.alerts] == [("lat:m1", 30.0)]
    (budget,) = facts.budgets
    assert (budget.model, budget.slo) == ("m1", "latency")
    assert budget.spent == pytest.approx(30 / (0.01 * 7 * 24 * 60))  # 30 bad minutes of a 100.8-minute budget
    (cost,) = facts.costs
    assert (cost.metric, cost.mean, cost.peak, cost.baseline) == ("cost_usd", 6.0, 6.0, 2.0)
    assert facts.acknowledged == (T0 + 4 * MIN, ANA)
    assert [p.text for p in facts.pages] == ["paged PagerDuty (the default service)"]
    assert [(c.said(), c.author) for c in facts.changes] == [("prompt v42", "ben")]
    assert charts == {}


def test_the_markdown_says_the_numbers_the_timeline_the_note_and_what_to_follow_up(world: World) -> None:
    text = world.review.markdown(world.incident_id)
    assert text is not None

    assert text.startswith(f"# Postmortem draft: latency on m1 (incident #{world.incident_id})")
    assert "| `lat:m1` latency on m1 | 09:00 UTC | 09:30 UTC | 30 min |" in text
    assert "- m1 latency: 29.8% of its 7-day budget" in text
    assert "- m1 `cost_usd`: mean $6.00, peak $6.00; baseline $2.00, so 3.0× baseline" in text
    assert f"- Time to acknowledge: 4 min by @{ANA}" in text
    assert "- Time to declare: 6 min" in text
    assert "- Time to resolve: 30 min" in text
    assert "- 09:00 UTC: paged PagerDuty (the default service)" in text
    assert "- prompt v42 to m1, 4 min before by ben" in text
    assert f"- 09:10 UTC · noted · @{BEN}: rolled the prompt back to v41" in text
    assert f"- 09:06 UTC · declared · @{BEN}: declared an incident; room #{ROOM}" in text
    assert f"Resolution note by @{ANA}: cause: prompt v42 broke caching; fix: rolled back to v41" in text
    assert "- [ ] Check whether prompt v42 on m1 caused it; roll back or fix forward" in text
    assert "Write the resolution note" not in text  # it has one


def test_the_summary_is_short_and_names_the_measurements(world: World) -> None:
    found = world.review.facts(world.incident_id, charts=False)
    assert found is not None

    summary = summary_text(found[0])

    assert f"📝 *Postmortem draft* for incident #{world.incident_id} (P1 · m1)" in summary
    assert "Firing: `lat:m1` 30 min" in summary
    assert "Acknowledged after 4 min · declared after 6 min · resolved after 30 min" in summary
    assert "Error budget spent: latency 29.8%" in summary


def test_an_incident_without_a_note_or_a_room_asks_for_the_note_and_says_not_declared(tmp_path: Path) -> None:
    world = build_world(tmp_path, room=False)
    world.service.resolve_incident(world.incident_id, actor=ANA)
    found = world.review.facts(world.incident_id, charts=False)
    assert found is not None

    text = render_markdown(found[0])

    assert "- Time to declare: not declared" in text
    assert "Resolution note: _none yet_" in text
    assert "- [ ] Write the resolution note" in text


def test_the_resolve_stores_the_note_in_the_same_transaction_and_a_second_resolve_keeps_none(world: World) -> None:
    with pytest.raises(Exception, match="Already resolved"):
        world.service.resolve_incident(world.incident_id, actor=BEN, cause="other", fix="other")
    found = world.review.facts(world.incident_id, charts=False)
    assert found is not None
    incident = found[0].incident
    assert incident.resolution_note is not None and incident.resolution_note["by"] == ANA
    notes = [e for e in found[0].timeline if e.kind == "resolution note"]
    assert len(notes) == 1 and notes[0].text == "prompt v42 broke caching / rolled back to v41"
    assert IncidentEventKind.RESOLUTION_NOTE.value == "resolution_note"


def test_charts_of_each_firing_metric_are_drawn_with_the_charts_extra(world: World) -> None:
    pytest.importorskip("matplotlib")
    found = world.review.facts(world.incident_id)
    assert found is not None
    facts, charts = found

    assert list(charts) == [f"incident-{world.incident_id}-m1-latency.png"]
    assert charts[f"incident-{world.incident_id}-m1-latency.png"].startswith(b"\x89PNG")
    assert f"- `incident-{world.incident_id}-m1-latency.png` (attached)" in render_markdown(facts)


def test_the_cli_prints_the_draft_and_refuses_an_unknown_incident(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/bot.db")
    world.engine.dispose()

    assert main(["postmortem", str(world.incident_id), "--config-dir", str(world.config_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# Postmortem draft: latency on m1 (incident #{world.incident_id})")
    assert "- m1 latency: 29.8% of its 7-day budget" in out

    assert main(["postmortem", "999", "--config-dir", str(world.config_dir)]) == 1
    assert "no incident #999 in the database" in capsys.readouterr().err


def test_slack_reads_the_timeline_through_the_queries(world: World) -> None:
    queries = Queries(world.engine)
    entries = queries.incident_timeline(world.incident_id, world.clock.now())
    assert entries is not None

    text = timeline_text(entries, slack=escape_mrkdwn)

    assert f"- 09:10 UTC · noted · <@{BEN}>: rolled the prompt back to v41" in text
    assert f"- 09:04 UTC · acknowledged · <@{ANA}>: acknowledged the whole incident" in text
    assert queries.incident_timeline(999, world.clock.now()) is None
