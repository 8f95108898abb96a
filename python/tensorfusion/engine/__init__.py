"""The engine as every home runs it: observability (sink, recorders' loops, alerts) and the
leader's duties (scheduling, allocation tables, the reads the management API serves). A home
adds only its store, its source of GPUs and which loops it starts."""
