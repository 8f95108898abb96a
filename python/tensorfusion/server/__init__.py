"""The management server: HTTP API, dashboard, /metrics and health, over a backend."""
