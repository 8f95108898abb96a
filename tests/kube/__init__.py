"""An emulator of the Kubernetes API server for tests, built on kmock, and its tests."""
