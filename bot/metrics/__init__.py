"""Metric samples and the sources that bring them in (push ingest; pull sources later)."""
