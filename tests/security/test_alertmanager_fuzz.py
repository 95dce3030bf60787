"""The Alertmanager webhook with a valid token and hostile bodies: never a 5xx (Alertmanager would
retry it forever), a 4xx with the reason, and nothing recorded unless the answer is 200."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from tests.security.conftest import ALERTMANAGER, BEARER, Edge, examples
from tests.security.hostile import hostile_text
from tests.sources.helpers import NOW

EXAMPLES = examples(300)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
times = st.sampled_from(
    ["2026-01-05T08:57:00Z", "0001-01-01T00:00:00Z", "2026-01-05T09:00:00+01:00", "9999-12-31T23:59:59Z", "x", ""]
) | st.datetimes().map(lambda d: d.isoformat())
labels = st.dictionaries(
    st.sampled_from(["alertname", "model", "service", "job", "severity"]) | st.text(max_size=10),
    st.sampled_from(["ModelDown", "support-bot", "critical", "P0", "weird", "<!channel>", ""])
    | st.text(max_size=20)
    | hostile_text,
    max_size=5,
)
alerts = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "pending"]) | json_values,
        "labels": labels | json_values,
        "annotations": st.dictionaries(st.sampled_from(["summary", "description", "runbook_url"]), st.text(max_size=40))
        | json_values,
        "startsAt": times | json_values,
        "endsAt": times | json_values,
        "generatorURL": st.text(max_size=20) | json_values,
        "fingerprint": st.from_regex(r"[0-9a-f]{16}", fullmatch=True) | json_values,
    },
)
payloads = st.fixed_dictionaries(
    {"version": st.just("4") | json_values},
    optional={
        "groupKey": st.text(max_size=30) | json_values,
        "truncatedAlerts": st.integers(-5, 10) | json_values,
        "status": st.sampled_from(["firing", "resolved"]) | json_values,
        "receiver": st.text(max_size=10) | json_values,
        "groupLabels": labels | json_values,
        "commonLabels": labels | json_values,
        "commonAnnotations": json_values,
        "externalURL": st.text(max_size=20) | json_values,
        "alerts": st.lists(alerts, max_size=4) | json_values,
    },
)
annotation_keys = st.sampled_from(["summary", "description", "runbook_url"])
good_alerts = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": st.fixed_dictionaries({"alertname": st.text(min_size=1, max_size=30)}).flatmap(
            lambda base: labels.map(lambda more: {**more, **base})
        ),
        "annotations": st.dictionaries(annotation_keys, st.text(max_size=50)),
        "startsAt": st.just("2026-01-05T08:57:00Z"),
        "endsAt": st.sampled_from(["0001-01-01T00:00:00Z", "2026-01-05T08:59:00Z"]),
        "fingerprint": st.from_regex(r"[0-9a-f]{16}", fullmatch=True),
    },
    optional={"generatorURL": st.text(max_size=20)},
)
"""Valid alerts with hostile label and annotation text, so the 200 path (recording) is fuzzed too."""
good_payloads = st.fixed_dictionaries(
    {
        "version": st.just("4"),
        "groupKey": st.text(max_size=30),
        "status": st.sampled_from(["firing", "resolved"]),
        "alerts": st.lists(good_alerts, min_size=1, max_size=3),
    },
    optional={"truncatedAlerts": st.integers(0, 3), "receiver": st.text(max_size=10)},
)
bodies = (
    payloads.map(lambda p: json.dumps(p).encode())
    | good_payloads.map(lambda p: json.dumps(p).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
    | st.text(max_size=100).map(str.encode)
)


def firing(**labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": "FuzzControl", "model": "support-bot", "severity": "warning", **labels},
        "annotations": {"summary": "control"},
        "startsAt": (NOW - timedelta(minutes=1)).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "0123456789abcdef",
    }


@EXAMPLES
@given(body=bodies)
def test_no_body_gives_a_5xx_and_a_refusal_records_nothing(edge: Edge, body: bytes) -> None:
    before = edge.snapshot()
    answer = edge.client.post(ALERTMANAGER, content=body, headers=BEARER)
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text
    reply = answer.json()
    if answer.status_code == 200:
        assert set(reply) == {"fired", "resolved"} and all(isinstance(n, int) for n in reply.values())
    else:
        assert answer.status_code in (400, 413, 415, 422), answer.text
        assert isinstance(reply.get("error"), str) and len(reply["error"]) > 10, reply
        assert edge.snapshot() == before


def test_the_control_payload_is_recorded(edge: Edge) -> None:
    """The fuzzing above can reach the 200 path: a valid v4 payload fires an alert."""
    payload = {"version": "4", "groupKey": '{}:{alertname="FuzzControl"}', "status": "firing", "alerts": [firing()]}
    answer = edge.client.post(ALERTMANAGER, content=json.dumps(payload).encode(), headers=BEARER)
    assert answer.status_code == 200, answer.text
    assert answer.json()["fired"] == 1
