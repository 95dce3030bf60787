"""Incidents: alerts grouped into the unit people hear about (pure core, store)."""
