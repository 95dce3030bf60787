"""The claim's query stays an index seek per candidate row (bot/notify/outbox_claims.py): its
"an earlier row waits ahead" and "most severe pending mate" subqueries each use the partial
index of pending rows of one incident or one alert. When they scanned every pending row instead,
a claim cost time quadratic in the backlog: 67 s a claim with 10,000 pending rows on SQLite.
The plan is what is pinned (no timing): SQLite's EXPLAIN QUERY PLAN names the index each uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.notify.outbox_claims import _OUTBOX_C, claimable, rank
from bot.storage.database import make_engine, migrate

NOW = datetime(2026, 1, 6, 22, 0, tzinfo=UTC)


def test_each_subquery_of_the_claim_seeks_one_incident_or_alert_in_the_pending_index(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/plan.db")
    migrate(engine)
    due = select(_OUTBOX_C.id).where(*claimable(NOW, ["slack"])).order_by(rank(), _OUTBOX_C.id).limit(10)
    sql = str(due.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        plan = [str(row[3]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    engine.dispose()

    searches = [step for step in plan if step.split(" ")[1:2] in (["earlier"], ["mate"])]
    assert sorted(searches) == [
        "SEARCH earlier USING INDEX ix_outbox_pending_per_alert (alert_id=? AND channel=? AND id<?)",
        "SEARCH earlier USING INDEX ix_outbox_pending_per_incident (incident_id=? AND channel=? AND id<?)",
        "SEARCH mate USING INDEX ix_outbox_pending_per_alert (alert_id=? AND channel=?)",
        "SEARCH mate USING INDEX ix_outbox_pending_per_incident (incident_id=? AND channel=?)",
    ], plan
