"""mlff-harness: release gates for the physical fidelity of machine-learned force fields."""

__version__ = "0.1.0"
