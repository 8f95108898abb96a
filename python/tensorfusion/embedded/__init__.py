"""The embedded control plane: `tensor-fusion up` on one machine, with no Kubernetes."""
