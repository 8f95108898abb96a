"""The node agent ("hypervisor"), embedded form: discovers this host's GPUs (NVML, or a declared
fleet) and registers them in the store, creates the shared regions of the workers placed here,
reads their usage back, and releases workers whose processes are gone."""
