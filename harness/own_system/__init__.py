"""A gate for your own system: `mlff-harness init` writes a first suite, `calibrate` sets its bounds."""
