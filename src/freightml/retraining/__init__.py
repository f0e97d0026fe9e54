"""Automatic retraining: the policy, the decision and its record, and the shift-aware
training window.

Modules: ``policy`` (configs/retraining.yaml as a typed object), ``rules`` (the triggers and
guards, pure functions), ``evidence`` (gather what they read, decide), ``act`` (record a
decision and start its run), ``decisions`` (retraining's table family in the store of
record), ``changepoint`` and ``window`` (the training window rule). See docs/retraining.md.
"""
