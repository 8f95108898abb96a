"""Pod admission: a Pod CREATE labelled `tensor-fusion.ai/enabled: "true"` is read with the
pod contract's reader and converted for TensorFusion (scheduler, normalised annotations, the
shim), or denied naming what cannot be read. Nothing here knows HTTP: the homes serve
`admission_review.review_response` over HTTPS."""
