"""Scheduler plugins, one module each, named and behaving as their kube-scheduler
namesakes where they have one: NodeName, NodeUnschedulable, NodeAffinity, TaintToleration,
NodePorts and NodeResourcesFit, plus UnsupportedFeatures and the GPU plugins. The pieces
they share (selector matching, taints, host ports, resource amounts) live beside them."""
