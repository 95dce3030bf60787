"""The samples windowed conditions read, kept between passes so each pass reads only what is new.

Reading every window afresh costs a pass as many rows as the windows hold: 1,000 models with
five metrics over an hour at 30 s are 600,000 rows, a second on SQLite before anything is
evaluated. So the first pass reads the windows once (one query), and every later pass reads, in
one query, the rows stored since (by id, so a late sample with an old timestamp arrives too) plus
the short spans ``ago`` terms look at long ago, which are not kept. The pass gets a copy of
``(now - longest window, now]`` of each series, so nothing it holds changes under it.

Ids on PostgreSQL are handed out before commit, so a transaction committing after a later one
leaves a hole below the newest id seen; the ids of such holes are asked for again on the next
passes until they appear or :data:`HOLE_PATIENCE` has passed (a rolled-back insert never will).
A change of the windowed metrics (a reload) starts again from a fresh read.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.metrics import store
from bot.metrics.samples import Points

HOLE_PATIENCE = timedelta(minutes=5)
"""How long an id below the newest seen is awaited (an ingest transaction takes milliseconds)."""
RECENT_IDS = 10_000
"""On a fresh read, the ids this close to the newest are read whatever their metric, so the
holes among them (transactions still open) are known and asked for again."""
MAX_HOLES = 100_000


class WindowCache:
    """Per process; safe to share between threads (one pass reads at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranges: dict[str, timedelta] = {}
        self._series: dict[tuple[str, str], tuple[array[float], array[float]]] = {}
        self._cursor: int | None = None
        """Every id up to here was read (or is a hole in :attr:`_holes`)."""
        self._holes: dict[int, datetime] = {}
        """Ids below the cursor not seen yet, with when they were first missed."""
        self._complete_from: dict[str, float] = {}
        """Per metric, the time from which every sample is held (older ones were let go)."""

    def read(
        self,
        session: Session,
        *,
        ranges: Mapping[str, timedelta],
        spans: Mapping[str, tuple[str, datetime, datetime]],
        now: datetime,
    ) -> dict[str, dict[str, Points]]:
        """model → key → samples: each metric of ``ranges`` (key: the metric) over its range
        before ``now``, and each span of ``spans`` (key → (metric, from, to), both ends included)."""
        with self._lock:
            if dict(ranges) != self._ranges or self._cursor is None or self._behind(now):
                rows = self._fresh(session, ranges, spans, now)
            else:
                rows = self._since(session, spans, now)
            out: dict[str, dict[str, Points]] = {}
            self._add_spans(rows, spans, out)
            self._forget_before(now)
            end = now.timestamp()
            for (model, name), (times, values) in self._series.items():
                start, stop = bisect_right(times, end - ranges[name].total_seconds()), bisect_right(times, end)
                if start < stop:
                    out.setdefault(model, {})[name] = Points(times[start:stop], values[start:stop])
            return out

    def _fresh(
        self,
        session: Session,
        ranges: Mapping[str, timedelta],
        spans: Mapping[str, tuple[str, datetime, datetime]],
        now: datetime,
    ) -> list[store.WindowRow]:
        since = {name: now - width for name, width in ranges.items()}
        rows = store.window_rows(session, since=since, spans=list(spans.values()), last_ids=RECENT_IDS)
        top = max((row[0] for row in rows), default=0)  # the newest row is among the last ids
        self._ranges, self._series, self._holes = dict(ranges), {}, {}
        self._complete_from = {name: at.timestamp() for name, at in since.items()}
        self._cursor = top - RECENT_IDS
        self._advance(rows, now, fresh=True)
        return rows

    def _since(
        self, session: Session, spans: Mapping[str, tuple[str, datetime, datetime]], now: datetime
    ) -> list[store.WindowRow]:
        assert self._cursor is not None
        rows = store.window_rows(session, since={}, spans=list(spans.values()), after_id=self._cursor, ids=self._holes)
        self._advance(rows, now)
        return rows

    def _behind(self, now: datetime) -> bool:
        """A pass earlier than the ones before it (a test, a replay) needs samples let go of."""
        return any((now - width).timestamp() < self._complete_from[name] for name, width in self._ranges.items())

    def _advance(self, rows: list[store.WindowRow], now: datetime, *, fresh: bool = False) -> None:
        """Keep the new rows of windowed metrics, move the cursor past them, note the holes."""
        assert self._cursor is not None
        cursor, holes, ranges = self._cursor, self._holes, self._ranges
        seen: set[int] = set()
        arrived: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for row_id, model, name, at, value in rows:
            if row_id > cursor:
                seen.add(row_id)
            elif row_id in holes:
                del holes[row_id]
            elif not fresh:
                continue  # an old sample read for an ``ago`` span: not for the cache
            if value is not None and name in ranges:
                arrived.setdefault((model, name), []).append((at, value))
        for key, samples in arrived.items():
            samples.sort()
            times, values = self._series.setdefault(key, (array("d"), array("d")))
            if times and samples[0][0] < times[-1]:  # late samples: merge (rare, and short series)
                samples = sorted([*zip(times, values, strict=True), *samples])
                del times[:], values[:]
            times.extend(at for at, _ in samples)
            values.extend(value for _, value in samples)
        newest = max(seen, default=cursor)
        if newest > cursor:
            for missing in range(max(cursor, 0) + 1, newest + 1):
                if missing not in seen:
                    holes.setdefault(missing, now)
            self._cursor = newest
        self._give_up_on_holes(now)

    def _give_up_on_holes(self, now: datetime) -> None:
        expired = [i for i, since in self._holes.items() if now - since > HOLE_PATIENCE]
        for i in expired:
            del self._holes[i]
        if len(self._holes) > MAX_HOLES:
            for i in sorted(self._holes)[: len(self._holes) - MAX_HOLES]:
                del self._holes[i]

    def _forget_before(self, now: datetime) -> None:
        for name, width in self._ranges.items():
            self._complete_from[name] = max(self._complete_from[name], (now - width).timestamp())
        for (model, name), (times, values) in list(self._series.items()):
            cut = bisect_right(times, self._complete_from[name])
            if cut:
                del times[:cut]
                del values[:cut]
            if not times:
                del self._series[(model, name)]

    @staticmethod
    def _add_spans(
        rows: list[store.WindowRow],
        spans: Mapping[str, tuple[str, datetime, datetime]],
        out: dict[str, dict[str, Points]],
    ) -> None:
        """The samples of each ``ago`` span, read fresh every pass (a day-old span is not kept)."""
        by_metric: dict[str, list[tuple[str, float, float]]] = {}
        for key, (metric, start, end) in spans.items():
            by_metric.setdefault(metric, []).append((key, start.timestamp(), end.timestamp()))
        if not by_metric:
            return
        found: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _, model, name, at, value in rows:
            if value is None:
                continue
            for key, first, last in by_metric.get(name, ()):
                if first <= at <= last:
                    found.setdefault((model, key), []).append((at, value))
        for (model, key), samples in found.items():
            samples.sort()
            out.setdefault(model, {})[key] = Points([t for t, _ in samples], [v for _, v in samples])
