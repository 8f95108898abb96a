"""The engine as every home runs it: observability (sink, recorders' loops, alerts), the
leader's duties (scheduling, allocation tables, the reads the management API serves) and the
home's base (`home.Home`: its started parts, stopping them, the reads). A home adds only its
store, its source of GPUs and which loops it starts."""
