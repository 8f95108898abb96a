"""Production traces replayed on the scheduler: reading them, and turning them into fleets and
pods."""
