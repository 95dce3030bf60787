"""Block Kit size and shape limits, checked the way Slack's API checks them.

Slack rejects an oversized or malformed message with ``invalid_blocks`` only
at runtime, usually in the middle of an incident when an alert payload is
larger than anyone expected.  The Slack sandbox (:mod:`bot.demo.slack_sandbox`,
also the tests' Web API emulator) runs these checks on every message and view,
so such payloads fail in tests and in the demo instead of in a real workspace.  Each problem is
reported as a string in Slack's own style: ``"<what is wrong> [json-pointer:
/blocks/3/text/text]"``, so a failing test names the offending field.

Only limits that are documented by Slack and likely to bite a bot are
checked; this is not a full Block Kit schema validator.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BUTTON_STYLES",
    "MAX_ACTIONS_ELEMENTS",
    "MAX_ACTION_ID",
    "MAX_BLOCK_ID",
    "MAX_BUTTON_TEXT",
    "MAX_BUTTON_URL",
    "MAX_BUTTON_VALUE",
    "MAX_CONTEXT_ELEMENTS",
    "MAX_CONTEXT_ELEMENT_TEXT",
    "MAX_HEADER_TEXT",
    "MAX_MESSAGE_BLOCKS",
    "MAX_MESSAGE_TEXT",
    "MAX_OPTION_TEXT",
    "MAX_OPTION_VALUE",
    "MAX_OVERFLOW_OPTIONS",
    "MAX_SECTION_FIELDS",
    "MAX_SECTION_FIELD_TEXT",
    "MAX_SECTION_TEXT",
    "MAX_VIEW_BLOCKS",
    "MAX_VIEW_TITLE",
    "MIN_OVERFLOW_OPTIONS",
    "VIEW_TYPES",
    "Problem",
    "check_blocks",
    "check_message",
    "check_view",
]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_BLOCK_ID = 255
MAX_ACTION_ID = 255
MAX_SECTION_TEXT = 3_000
MAX_SECTION_FIELDS = 10
MAX_SECTION_FIELD_TEXT = 2_000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2_000
MAX_BUTTON_URL = 3_000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_ELEMENT_TEXT = 2_000
MIN_OVERFLOW_OPTIONS = 2
MAX_OVERFLOW_OPTIONS = 5
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_VIEW_TITLE = 24
BUTTON_STYLES = frozenset({"primary", "danger"})
VIEW_TYPES = frozenset({"modal", "home"})


def _too_long(limit: int, path: str) -> str:
    # Slack phrases its length errors as "must be less than <limit + 1> characters".
    return f"must be less than {limit + 1} characters [json-pointer:{path}]"


def _check_len(value: Any, limit: int, path: str, errors: list[str]) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors.append(_too_long(limit, path))


def _text_of(obj: Any) -> Any:
    """Return ``obj["text"]`` of a text object, or None when absent."""
    return obj.get("text") if isinstance(obj, dict) else None


def _check_element(element: Any, path: str, errors: list[str]) -> None:
    """Check an interactive element (button, select, ...) inside a block."""
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        errors.append(f"missing required field: type [json-pointer:{path}]")
        return
    _check_len(element.get("action_id"), MAX_ACTION_ID, f"{path}/action_id", errors)
    if element["type"] == "overflow":
        _check_overflow(element, path, errors)
        return
    if element["type"] != "button":
        return
    _check_len(_text_of(element.get("text")), MAX_BUTTON_TEXT, f"{path}/text/text", errors)
    _check_len(element.get("value"), MAX_BUTTON_VALUE, f"{path}/value", errors)
    _check_len(element.get("url"), MAX_BUTTON_URL, f"{path}/url", errors)
    style = element.get("style")
    if style is not None and style not in BUTTON_STYLES:
        errors.append(f"must be one of {sorted(BUTTON_STYLES)} [json-pointer:{path}/style]")


def _check_overflow(element: dict[str, Any], path: str, errors: list[str]) -> None:
    """An overflow menu holds 2 to 5 options, each with short text and value."""
    options = element.get("options")
    if not isinstance(options, list) or not MIN_OVERFLOW_OPTIONS <= len(options) <= MAX_OVERFLOW_OPTIONS:
        count = len(options) if isinstance(options, list) else 0
        errors.append(
            f"must have {MIN_OVERFLOW_OPTIONS} to {MAX_OVERFLOW_OPTIONS} options, not {count} "
            f"[json-pointer:{path}/options]"
        )
        return
    for i, option in enumerate(options):
        if not isinstance(option, dict):
            errors.append(f"must be an object [json-pointer:{path}/options/{i}]")
            continue
        _check_len(_text_of(option.get("text")), MAX_OPTION_TEXT, f"{path}/options/{i}/text/text", errors)
        _check_len(option.get("value"), MAX_OPTION_VALUE, f"{path}/options/{i}/value", errors)


def _check_block(block: Any, path: str, errors: list[str]) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        errors.append(f"missing required field: type [json-pointer:{path}]")
        return
    _check_len(block.get("block_id"), MAX_BLOCK_ID, f"{path}/block_id", errors)
    kind = block["type"]
    if kind == "section":
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            errors.append(f"must provide either text or fields [json-pointer:{path}]")
        _check_len(_text_of(text), MAX_SECTION_TEXT, f"{path}/text/text", errors)
        if isinstance(fields, list):
            if len(fields) > MAX_SECTION_FIELDS:
                errors.append(f"no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{path}/fields]")
            for i, field in enumerate(fields):
                _check_len(_text_of(field), MAX_SECTION_FIELD_TEXT, f"{path}/fields/{i}/text", errors)
        if "accessory" in block:
            _check_element(block["accessory"], f"{path}/accessory", errors)
    elif kind == "header":
        _check_len(_text_of(block.get("text")), MAX_HEADER_TEXT, f"{path}/text/text", errors)
    elif kind == "actions":
        for i, element in enumerate(_elements(block, MAX_ACTIONS_ELEMENTS, path, errors)):
            _check_element(element, f"{path}/elements/{i}", errors)
    elif kind == "context":
        for i, element in enumerate(_elements(block, MAX_CONTEXT_ELEMENTS, path, errors)):
            _check_len(_text_of(element), MAX_CONTEXT_ELEMENT_TEXT, f"{path}/elements/{i}/text", errors)
    elif kind == "input" and "element" in block:
        _check_element(block["element"], f"{path}/element", errors)



def _elements(block: dict[str, Any], limit: int, path: str, errors: list[str]) -> list[Any]:
    """An actions or context block's elements, with Slack's errors for none or too many."""
    elements = block.get("elements")
    if not isinstance(elements, list):
        errors.append(f"missing required field: elements [json-pointer:{path}]")
        return []
    if len(elements) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:{path}/elements]")
    return elements


def check_blocks(blocks: Any, *, max_blocks: int = MAX_MESSAGE_BLOCKS, pointer: str = "/blocks") -> list[str]:
    """Return Slack-style error strings for ``blocks``; an empty list means valid.

    ``blocks`` must already be decoded from JSON.  A non-list is reported as a
    single error; the caller decides whether that is ``invalid_blocks_format``.
    """
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:{pointer}]")
    for i, block in enumerate(blocks):
        _check_block(block, f"{pointer}/{i}", errors)
    return errors


Problem = tuple[str, list[str]] | None  # (Slack error code, detail strings), None when valid


def check_message(fields: dict[str, Any], *, required: bool = True) -> Problem:
    """Check a message's ``text`` / ``blocks`` / ``metadata`` as ``chat.postMessage`` does.

    ``fields`` holds the decoded fields that were sent; ``required`` is False for
    ``chat.update``, which may change just one of them.
    """
    if required and not (fields.get("text") or fields.get("blocks") or fields.get("attachments")):
        return "no_text", []
    if len(str(fields.get("text", ""))) > MAX_MESSAGE_TEXT:
        return "msg_too_long", [_too_long(MAX_MESSAGE_TEXT, "/text")]
    if "blocks" in fields:
        if not isinstance(fields["blocks"], list):
            return "invalid_blocks_format", ["must be an array [json-pointer:/blocks]"]
        errors = check_blocks(fields["blocks"])
        if errors:
            return "invalid_blocks", errors
    meta = fields.get("metadata")
    # Slack message metadata is {"event_type": str, "event_payload": object}; bots
    # rely on it to find their own messages again, so a malformed one must fail loudly.
    if meta is not None and not (
        isinstance(meta, dict)
        and isinstance(meta.get("event_type"), str)
        and isinstance(meta.get("event_payload"), dict)
    ):
        return "invalid_metadata_format", [
            "must have event_type (string) and event_payload (object) [json-pointer:/metadata]"
        ]
    return None


def check_view(view: Any) -> Problem:
    """Check a ``views.*`` payload: type, title lengths and up to 100 blocks.

    Block problems answer ``invalid_blocks`` (as for messages); anything else
    about the view answers ``invalid_arguments``.
    """
    if not isinstance(view, dict):
        return "invalid_arguments", ["must be an object [json-pointer:/view]"]
    errors: list[str] = []
    if view.get("type") not in VIEW_TYPES:
        errors.append(f"must be one of {sorted(VIEW_TYPES)} [json-pointer:/view/type]")
    for key in ("title", "submit", "close"):
        _check_len(_text_of(view.get(key)), MAX_VIEW_TITLE, f"/view/{key}/text", errors)
    block_errors = check_blocks(view.get("blocks", []), max_blocks=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    if errors:
        return "invalid_arguments", errors + block_errors
    return ("invalid_blocks", block_errors) if block_errors else None
