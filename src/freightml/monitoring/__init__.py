"""Monitoring: reference profiles, drift, realised quality, metrics export and the report.

The shapes every part exchanges are in :mod:`freightml.monitoring.types` (a snapshot is
machine-readable JSON first; the report and the Prometheus gauges are views of it), the
thresholds in :mod:`freightml.monitoring.config` (configs/monitoring.yaml).
"""
