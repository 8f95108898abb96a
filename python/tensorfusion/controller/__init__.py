"""The Kubernetes home: `tensor-fusion controller`, the operator process the chart runs as the
controller Deployment. The sibling of `embedded/`: the same engine (`engine/`) over KubeStore,
with GPUs registered by the node agents and reconcilers instead of NVML or a fleet file."""
