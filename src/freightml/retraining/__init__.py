"""Automatic retraining: the policy, the decision and its record, and the shift-aware
training window.

Modules: ``policy`` (configs/retraining.yaml as a typed object), ``decision`` (gather the
evidence, decide), ``act`` (record a decision and start its run), ``changepoint`` and
``window`` (the training window rule). See docs/retraining.md.
"""
