"""Automatic retraining: the policy, the decision, and the shift-aware training window."""
