"""Splitting a fleet-wide query whose answer is too big (pure).

A multi-tenant store refuses a query that fetches too many series (Mimir's
``max_fetched_series_per_query``, Prometheus' ``--query.max-samples``), and a pull of 200,000
series in one answer is slow to send and parse. A ``model: "*"`` query written with a ``{shard}``
placeholder, ``max by (model) (latency_ms{model=~"{shard}"})``, is first asked whole (``.*``); if
its answer holds more than ``prometheus.max_series`` series, or the store refuses it, it is asked
again once per shard of model names (by first character, which every model name has) and the
answers are merged. A shard that fails fails the query: half a fleet's values would look like the
other half recovered.
"""

from __future__ import annotations

import re
from string import ascii_lowercase

from bot.config.source_schema import SHARD

WHOLE = ".*"
SHARDS: tuple[str, ...] = ("[0-9].*", *(f"[{c}{c.upper()}].*" for c in ascii_lowercase))
"""Regular expressions over model names (``[A-Za-z0-9][A-Za-z0-9._-]*``) that together match
each name exactly once."""


def with_shard(query_text: str, shard: str) -> str:
    return query_text.replace(SHARD, shard)


TOO_BIG = re.compile(r"too many|exceed|limit|maximum|more than", re.IGNORECASE)
"""How stores refuse a query that reads too much: Prometheus ("would load too many samples"),
Mimir and Cortex ("the query exceeded the maximum number of series (limit: …)"), Thanos ("exceeded
series limit"), VictoriaMetrics ("cannot select more than -search.maxUniqueTimeseries")."""


def splits(query_text: str, *, max_series: int | None, series: int, error: str | None) -> bool:
    """Whether the whole answer (``series`` of them, or a refusal) calls for the shards. Only a
    refusal for size does: a timeout, a parse error or a bad token would fail 27 times over."""
    if SHARD not in query_text or max_series is None:
        return False
    return bool(TOO_BIG.search(error)) if error is not None else series > max_series
