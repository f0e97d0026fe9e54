"""Automatic retraining: the policy, the decision, the shift-aware window and the schedule."""
