"""incident-bot: Slack incident response for ML and LLM services.

The data flow is the architecture, and the sub-packages follow it: metrics → evaluation →
alerts → incidents → escalation → notify → slack (interactions), with the service and the
queries between the core and the edges.

Imports only run down :data:`LAYERS` (``tests/test_layers.py`` checks every import in ``bot/``):
a module may import from its own layer and the layers before it, never from a later one. So the
pure core never reaches for the service or Slack, and the edges (Slack, the sources, the
composition root) depend on the service, not the other way round. The order is not quite the
data flow where types are shared: the evaluation builds the lifecycle's observations, so
``alerts`` (the pure state machine and its store) comes before ``evaluation``; the counters of
``observability`` sit under everything that counts.
"""

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "clock",
        "errors",
        "severity",
        "safe_text",
        "logs",
        "memory",
        "http_limits",
        "http_helpers",
        "processes",
        "settings",
    ),
    ("config",),
    ("storage",),
    ("metrics", "changes"),
    ("alerts",),
    ("observability",),
    ("evaluation",),
    ("silences",),
    ("incidents",),
    ("escalation",),
    ("notify",),
    ("slo", "review"),
    (
        "pending_actions",
        "recording",
        "incident_actions",
        "service",
        "incident_response",
        "incident_review",
        "queries",
        "retention",
        "health",
    ),
    ("slack", "sources"),
    ("jobs", "rule_tests", "demo", "app", "cli", "__main__"),
)
"""``bot``'s packages and top-level modules, lowest first (see above)."""
