"""Every sentence the Slack surface says to a person, in one place.

Gathered here so wording stays consistent (and reviewable) across buttons, commands and the
App Home, and so no handler forgets to escape what a user typed: each function that puts
user-supplied text into a reply escapes it with :func:`escape_mrkdwn` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from bot.incidents.timeline import Entry
from bot.incidents.timeline import timeline_text as timeline
from bot.notify.slack_text import escape_mrkdwn

RUNBOOK_USAGE = "Usage: `/runbook <model>` shows the model's runbook, e.g. `/runbook fraud-detector-v2`."
CHANGES_USAGE = (
    "Usage: `/changes [model] [window]` lists what shipped (model versions, prompts, datasets …) in the last "
    "24 hours (or the window, e.g. `/changes support-bot 7d`), newest first."
)
ALERTS_USAGE = (
    "Usage: `/alerts` lists the active alerts, most severe first; "
    "`/alerts review [window]` reviews the alerts of the last 7 days (or the window, e.g. `/alerts review 30d`)."
)
SLO_USAGE = (
    "Usage: `/slo status [model] [window] [chart]`: without a model one line per model, worst first; "
    "with one, its SLO table (e.g. `/slo status support-bot 30d`); "
    "`chart` posts the model's error-budget chart in the channel (e.g. `/slo status support-bot chart`)."
)
SLO_NONE_CONFIGURED = "No SLOs are configured. Add them under `slos:` in a `rules/*.yaml` file."
SLO_OVERVIEW_HINT = (
    "`/slo status <model>` shows a model's table · `/slo status <model> 30d` another window · "
    "`/slo status <model> chart` posts its error-budget chart here"
)
REVIEW_TRUNCATED = (
    "_The review is longer than one Slack message; the rest was cut. `incident-bot alerts review` prints it all._"
)
TRY_AGAIN = "Something went wrong on my side and nothing was changed. Please try again in a moment."
KEEPS_CHANGING = "This alert kept changing while I tried; nothing was changed. Please try again."
INCIDENT_KEEPS_CHANGING = "This incident kept changing while I tried; nothing was changed. Please try again."


def kept_for_later(verb: str, what: str) -> str:
    """A click the database could not take yet: it is kept, not lost (bot.pending_actions)."""
    noun = {"acknowledge": "acknowledgement", "release": "release", "still_on_it": "answer"}.get(verb, "resolution")
    return (
        f"My database is unreachable right now. Your {noun} of {what} is saved and will be applied as "
        "soon as it is back, before any escalation runs. No need to click again."
    )


_SLACK_USER_ID = re.compile(r"(?<![<@\w])\b[UW](?=[A-Z0-9]*\d)[A-Z0-9]+\b")
"""A raw Slack user id (``U0123ABC``) in a sentence; requires a digit so ``UTC`` is left alone."""


_SAFE_MARKUP = re.compile(r"&lt;(@[UW][A-Z0-9]+|#[CG][A-Z0-9]+)&gt;")
"""A user mention or channel link the core wrote ("Already declared by <@U1>: the room is <#C1>"):
kept as markup after escaping, since neither can notify more than the one person named."""


def mention_users(text: str) -> str:
    """Turn raw user ids from the alert history into ``<@U…>`` mentions Slack renders as names.

    The alert core records actors as bare ids (it knows nothing of Slack markup); the text is
    escaped first, so only the mentions we add here are markup.
    """
    escaped = _SAFE_MARKUP.sub(r"<\1>", escape_mrkdwn(text))
    return _SLACK_USER_ID.sub(lambda m: f"<@{m.group(0)}>", escaped)


def refused(reason: str) -> str:
    """Why a button did nothing, e.g. "Already acknowledged by <@U1> at 14:02 UTC."."""
    return f":no_entry_sign: {mention_users(reason)}"


def not_allowed_channel(verb: str, channel: str, *, what: str = "alert") -> str:
    return f":no_entry_sign: You are not allowed to {verb} this {what}: only members of <#{channel}> may act on alerts."


def not_allowed_usergroup(verb: str, usergroup: str, *, what: str = "alert") -> str:
    return (
        f":no_entry_sign: You are not allowed to {verb} this {what}: "
        f"only members of the <!subteam^{usergroup}> group may act on alerts."
    )


def no_channel_to_check(verb: str, *, what: str = "alert") -> str:
    return (
        f":no_entry_sign: You are not allowed to {verb} this {what} from here: only members of the {what}'s "
        f"channel may act on alerts, and I cannot tell which channel that is. Use the buttons on the {what} message."
    )


def access_check_failed(verb: str, detail: str, *, what: str = "alert") -> str:
    return (
        f":warning: I could not check whether you may {verb} this {what} (Slack said: `{escape_mrkdwn(detail)}`), "
        "so nothing was changed. Ask an admin to check the `access:` section of the configuration "
        "and that the bot can read the channel or user group."
    )


def bad_button(value: object) -> str:
    return f":warning: This button refers to an alert I cannot read (`{escape_mrkdwn(str(value)[:100])}`)."


def alert_not_found(alert_id: int) -> str:
    return f":warning: Alert #{alert_id} does not exist (any more); nothing was changed."


def incident_not_found(incident_id: int) -> str:
    return f":warning: Incident #{incident_id} does not exist (any more); nothing was changed."


def bad_menu_choice(value: object) -> str:
    return f":warning: This menu choice refers to an alert I cannot read (`{escape_mrkdwn(str(value)[:100])}`)."


def no_runbook(model: str) -> str:
    return (
        f":warning: No runbook is configured for `{escape_mrkdwn(model)}`. "
        "Add `runbooks/default.md`, or name one with `runbook:` on the model."
    )


def unknown_model(name: str, *, close: Iterable[str], known: Iterable[str]) -> str:
    """A helpful error: what was typed, the likely intended names, and every valid one."""
    text = f"Unknown model `{escape_mrkdwn(name)}`."
    suggestions = [f"`{escape_mrkdwn(m)}`" for m in close]
    if suggestions:
        text += f" Did you mean: {', '.join(suggestions)}?"
    names = sorted(known)
    text += (
        f" Known models: {', '.join(f'`{escape_mrkdwn(m)}`' for m in names)}."
        if names
        else " No models are configured."
    )
    return text


def no_slos_for(model: str, *, with_slos: Iterable[str] = ()) -> str:
    text = f"No SLOs are configured for `{escape_mrkdwn(model)}`."
    names = sorted(with_slos)
    if names:
        text += f" Models with SLOs: {', '.join(f'`{escape_mrkdwn(m)}`' for m in names)}."
    return text


def bad_window(text: str, *, usage: str = SLO_USAGE, reason: str = "") -> str:
    """An argument that is not a usable window, with how to write one (and the command's usage)."""
    why = reason or "write it like `7d`, `24h` or `30m`"
    return f"`{escape_mrkdwn(text)}` is not a window: {why}.\n{usage}"


def slo_header(model: str | None, window: str) -> str:
    """``window`` is already readable text (``last 7 days``, ``each SLO's window``)."""
    if model:
        return f"*SLO status — {escape_mrkdwn(model)}* ({window})"
    return f"*SLO status — all models, worst first* ({window})"


def slo_chart_needs_model(models: Iterable[str]) -> str:
    example = next(iter(sorted(models)), "support-bot")
    return f"`chart` needs a model: e.g. `/slo status {escape_mrkdwn(example)} chart`.\n{SLO_USAGE}"


def slo_chart_posted(model: str, channel: str) -> str:
    return f"📈 Posted the error-budget chart of `{escape_mrkdwn(model)}` in <#{channel}>."


def slo_chart_comment(model: str, window: str, user: str) -> str:
    name = escape_mrkdwn(model)
    who = f" for <@{user}>" if user else ""
    return f"📈 Error budget of `{name}` over the {window}{who} (`/slo status {name} chart`)"


SLO_CHART_UNAVAILABLE = (
    ":warning: I cannot draw charts: matplotlib is not installed where I run. "
    "Ask whoever runs me to `pip install 'incident-bot[charts]'`; the dashboard works without it."
)


def slo_chart_failed(detail: str) -> str:
    hint = {
        "not_in_channel": " Invite me with `/invite @incident-bot`, or run the command in a channel I am in.",
        "channel_not_found": " I cannot see this channel: invite me, or run the command in a channel I am in.",
        "missing_scope": " The app needs the `files:write` scope: ask an admin to add it and reinstall the app.",
    }.get(detail, " Please try again in a moment.")
    return f":warning: I could not post the chart here (Slack said: `{escape_mrkdwn(detail)}`).{hint}"


def runbook_truncated(model: str) -> str:
    return f"_The runbook of `{escape_mrkdwn(model)}` is longer than one Slack message; the rest was cut._"


# --------------------------------------------------------------------------- incident rooms

TIMELINE_SHOWN = 50
"""Entries ``/incident timeline`` shows (the newest): the whole of it is in the postmortem."""

INCIDENT_USAGE = (
    "Usage: `/incident declare [model] [title]` opens an incident room (for the model's open incident, or a new "
    "one); in the room: `/incident update <text>` · `/incident commander @user` · `/incident timeline` · "
    "`/incident resolve`."
)
COMMANDER_USAGE = "Usage: `/incident commander @user` names the incident commander (pick them with @)."
NOT_IN_A_ROOM = (
    ":warning: This is not an incident room. Run `/incident update`, `commander`, `timeline` and `resolve` in the "
    "room (`#inc-…`) of the incident; `/incident declare [model] [title]` opens one."
)
UPDATE_POSTED = "📣 Your update is posted here and in the alert's thread."
RESOLVED_FROM_ROOM = "🟢 Resolved: the alert channel and this room hear it."


def declared(room: str | None, incident_id: int | None) -> str:
    """What the declarer is told: the room is on its way (Slack makes it through the outbox)."""
    name = escape_mrkdwn(room or "")
    return f"🚨 Incident #{incident_id} declared: its room `#{name}` is being created and you are invited."


def commander_taken(user: str) -> str:
    return f"🎖️ <@{user}> is now the incident commander."


def timeline_text(entries: Sequence[Entry]) -> str:
    """``/incident timeline``: the newest :data:`TIMELINE_SHOWN` entries (people as mentions,
    what they wrote escaped)."""
    return "*Timeline*\n" + timeline(entries, slack=escape_mrkdwn, limit=TIMELINE_SHOWN)


# --------------------------------------------------------------------------- resolution notes and the timeline

NOTE_NEEDED = "Write what caused it or what fixed it: this severity needs a resolution note to resolve."
NOTE_FORM_OPENED = "📝 This severity needs a resolution note: the form is open; submitting it resolves the incident."
ONLY_IN_A_ROOM = (
    ":information_source: *Add to timeline* works in an incident's room only: declare the incident "
    "(`/incident declare`) and mark messages there."
)


def note_saved(incident_id: int) -> str:
    return f":memo: Resolution note saved on incident #{incident_id}; the next one of this rule and model shows it."


def marked(incident_id: int) -> str:
    return f":stopwatch: Added to the timeline of incident #{incident_id}."


def already_marked(incident_id: int) -> str:
    return f":stopwatch: This message is already on the timeline of incident #{incident_id}."
