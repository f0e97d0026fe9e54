"""Automatic retraining: the policy, the decision and its record, the training window.

Modules: ``policy`` (configs/retraining.yaml as a typed object), ``decision`` (gather the
evidence, decide, record). See docs/retraining.md.
"""
