"""Resource models (our CRDs, the pod annotation contract, quantities, configs), validation
and CRD schema generation. Imports nothing else of tensor-fusion but its errors."""
