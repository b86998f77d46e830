"""Subscribers to flux_api.events: what operators read (log lines, metrics; usage next)."""
