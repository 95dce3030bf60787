"""Escalation: an unacknowledged incident climbs its policy (pure planning, claiming sweep)."""
