"""Level-triggered reconcilers of the controller, driven by `ClusterStore.watch`: the key
(kind, namespace, name) is each reconcile's only input; it reads the object and what it
owns, writes only what differs, with the resourceVersion it read, and status last."""
