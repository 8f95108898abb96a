"""Reconcilers and the leader-only machinery of the control plane."""
