"""Shared state: images (disk or Redis), locks, probes, rate-limit counts."""
