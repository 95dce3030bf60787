"""Rule evaluation: latest samples + rules + open alerts → transitions (pure)."""
