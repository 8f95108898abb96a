"""Clients of the management API: the `run`, `status` and `allocation` commands."""
