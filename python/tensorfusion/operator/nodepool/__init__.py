"""Node pools that look after themselves: the node agents' rolling update inside maintenance
windows, compaction of empty nodes, and GPU nodes provisioned through Karpenter or a cloud
vendor's API, between a pool's warm minimum and its maximum.

Each part plans from a `PoolView` at a given time (pure: the management API shows the same
plan) and then carries out what is due; one reconciler per pool runs the parts in turn."""
