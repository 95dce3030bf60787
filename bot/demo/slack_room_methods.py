"""The emulated workspace's channel management: the Web API methods incident rooms need.

``conversations.create`` (``name_taken`` for a name any channel has, ``invalid_name_specials``
for a name Slack would refuse), ``conversations.info``, ``conversations.invite``
(``already_in_channel`` when everyone asked is already in, ``cant_invite_self``, and
``not_in_channel`` when the bot is not in it), ``conversations.setTopic`` /
``conversations.setPurpose``, ``pins.add`` (``already_pinned``, ``message_not_found``) and
``usergroups.list`` (a group's handle set with :meth:`RoomWorkspace.set_usergroup`).

A subclass of :class:`bot.demo.slack_methods.SlackWebApi`, kept apart so each module stays
readable; every method runs with ``self._cond`` held by the caller, as there.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from bot.demo.slack_methods import JsonDict, SlackWebApi, _ApiError

_NAME = re.compile(r"^[a-z0-9_-]{1,80}$")
SOMEONE = "U0SOMEONE"
"""The creator of a channel the bot did not create (one named before, as people's channels are)."""


class RoomWorkspace(SlackWebApi):
    """:class:`SlackWebApi` plus channel creation, invitations, topics, purposes and pins."""

    def __init__(self, token: str = "xoxb-test", **workspace: Any) -> None:
        self._created: dict[str, JsonDict] = {}
        self._handles: dict[str, str] = {}
        super().__init__(token, **workspace)
        self._methods.update(
            {
                "conversations.create": self._conv_create,
                "conversations.info": self._conv_info,
                "conversations.invite": self._conv_invite,
                "conversations.setTopic": self._set_topic,
                "conversations.setPurpose": self._set_purpose,
                "pins.add": self._pins_add,
                "usergroups.list": self._usergroups_list,
            }
        )

    def reset(self) -> None:
        """Forget pins with the messages (channels made and their members stay, like channel IDs)."""
        with self._cond:
            super().reset()
            self._pins: dict[str, list[str]] = {}

    # ------------------------------------------------------------ configuration and inspection
    def set_usergroup(self, usergroup_id: str, user_ids: list[str], *, handle: str | None = None) -> None:
        """Configure a user group's members (``usergroups.users.list``) and its ``@handle`` (``usergroups.list``)."""
        with self._cond:
            super().set_usergroup(usergroup_id, user_ids)
            if handle:
                self._handles[usergroup_id] = handle.removeprefix("@")

    def channel_info(self, channel: str) -> JsonDict:
        """What ``conversations.info`` says of ``channel`` (name or ID)."""
        with self._cond:
            return copy.deepcopy(self._info(self.channel_id(channel)))

    def members_of(self, channel: str) -> list[str]:
        with self._cond:
            return list(self._members.get(self.channel_id(channel), []))

    def pinned(self, channel: str) -> list[str]:
        """The ``ts`` of the messages pinned in ``channel``."""
        with self._cond:
            return list(self._pins.get(self.channel_id(channel), []))

    def created_channels(self) -> list[JsonDict]:
        """The channels made with ``conversations.create``, oldest first."""
        with self._cond:
            return [copy.deepcopy(self._info(cid)) for cid in self._created]

    # ------------------------------------------------------------ methods
    def _name_of(self, cid: str) -> str:
        return next((name for name, known in self._channels.items() if known == cid), cid)

    def _info(self, cid: str) -> JsonDict:
        made = self._created.get(cid, {})
        return {
            "id": cid,
            "name": self._name_of(cid),
            "is_channel": True,
            "is_private": made.get("is_private", False),
            "creator": made.get("creator", SOMEONE),
            "topic": {"value": made.get("topic", "")},
            "purpose": {"value": made.get("purpose", "")},
        }

    def _conv_create(self, params: JsonDict) -> JsonDict:
        name = str(params.get("name") or "")
        if not _NAME.match(name):
            raise _ApiError("invalid_name_specials")
        if name in self._channels:
            raise _ApiError("name_taken")
        cid = self.channel_id(name)
        private = params.get("is_private") in (True, "true", "1", 1)
        self._created[cid] = {"creator": self.bot_user_id, "is_private": private}
        self._members[cid] = [self.bot_user_id]
        return {"channel": self._info(cid)}

    def _conv_info(self, params: JsonDict) -> JsonDict:
        return {"channel": self._info(self._resolve(params.get("channel")))}

    def _conv_invite(self, params: JsonDict) -> JsonDict:
        cid = self._resolve(params.get("channel"))
        users = [u for u in str(params.get("users") or "").split(",") if u]
        if not users:
            raise _ApiError("no_user")
        members = self._members.setdefault(cid, [])
        if self.bot_user_id not in members:
            raise _ApiError("not_in_channel")
        if users == [self.bot_user_id]:
            raise _ApiError("cant_invite_self")
        new = [u for u in users if u not in members and u != self.bot_user_id]
        if not new:
            raise _ApiError("already_in_channel")
        members.extend(new)
        return {"channel": self._info(cid)}

    def _set_topic(self, params: JsonDict) -> JsonDict:
        cid = self._resolve(params.get("channel"))
        self._created.setdefault(cid, {})["topic"] = str(params.get("topic") or "")
        return {"topic": self._created[cid]["topic"]}

    def _set_purpose(self, params: JsonDict) -> JsonDict:
        cid = self._resolve(params.get("channel"))
        self._created.setdefault(cid, {})["purpose"] = str(params.get("purpose") or "")
        return {"purpose": self._created[cid]["purpose"]}

    def _pins_add(self, params: JsonDict) -> JsonDict:
        cid = self._resolve(params.get("channel"))
        ts = str(params.get("timestamp") or "")
        if (cid, ts) not in self._by_key:
            raise _ApiError("message_not_found")
        pins = self._pins.setdefault(cid, [])
        if ts in pins:
            raise _ApiError("already_pinned")
        pins.append(ts)
        return {}

    def _usergroups_list(self, params: JsonDict) -> JsonDict:
        groups = [{"id": gid, "handle": self._handles.get(gid, gid.lower())} for gid in sorted(self._usergroups)]
        return {"usergroups": groups}
