"""Who may act from Slack: the ``access:`` policy (anyone, a channel's members, a user group).

Shared by every listener that changes something (Acknowledge, Resolve, Silence, ``/silence``),
so the same person is let through or refused the same way whatever they clicked or typed.
Membership comes from Slack and is cached (:class:`MembershipCache`): a burst of clicks during an
incident must not become a burst of rate-limited Web API calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.schema import Access
from bot.slack import messages

log = logging.getLogger(__name__)


class MembershipCache:
    """Who is in a channel or user group, remembered for ``ttl`` seconds.

    A burst of clicks during an incident must not turn into a burst of ``conversations.members``
    calls (Slack rate-limits them); a minute is short enough for a newly invited responder.
    """

    def __init__(self, *, ttl: float = 60.0, timer: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._timer = timer
        self._entries: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, key: str, fetch: Callable[[], Awaitable[frozenset[str]]]) -> frozenset[str]:
        now = self._timer()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        users = await fetch()
        self._entries[key] = (now, users)
        return users


async def access_refusal(
    client: AsyncWebClient,
    access: Access,
    cache: MembershipCache,
    *,
    user: str,
    channel: str | None,
    verb: str,
    what: str = "alert",
) -> str | None:
    """None when ``user`` may act under the ``access:`` policy, else the message saying why not.

    Fails closed: if Slack cannot tell us who is a member, nobody is let through.
    """
    if access.allow == "anyone":
        return None
    try:
        if access.allow == "usergroup":
            group = str(access.usergroup)
            users = await cache.members(f"usergroup:{group}", lambda: _usergroup_users(client, group))
            return None if user in users else messages.not_allowed_usergroup(verb, group, what=what)
        if channel is None:
            return messages.no_channel_to_check(verb, what=what)
        users = await cache.members(f"channel:{channel}", lambda: _channel_members(client, channel))
        return None if user in users else messages.not_allowed_channel(verb, channel, what=what)
    except SlackApiError as exc:
        log.warning("access check for %s failed: %s", user, exc.response.get("error"))
        return messages.access_check_failed(verb, str(exc.response.get("error", "error")), what=what)
    except Exception as exc:  # Slack unreachable: refuse rather than let anyone through
        log.warning("access check for %s failed", user, exc_info=True)
        return messages.access_check_failed(verb, type(exc).__name__, what=what)


async def _channel_members(client: AsyncWebClient, channel: str) -> frozenset[str]:
    users: set[str] = set()
    cursor: str | None = None
    while True:
        page = await client.conversations_members(channel=channel, limit=1000, cursor=cursor)
        users.update(page.get("members") or [])
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return frozenset(users)


async def _usergroup_users(client: AsyncWebClient, usergroup: str) -> frozenset[str]:
    page = await client.usergroups_users_list(usergroup=usergroup)
    return frozenset(page.get("users") or [])
