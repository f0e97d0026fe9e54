"""Pipelines: wiring of components only (display names, retries, caching, secrets)."""
