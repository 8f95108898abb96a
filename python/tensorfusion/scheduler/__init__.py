"""Placing GPU workloads: the framework, its plugins, the allocator and cluster snapshots."""
