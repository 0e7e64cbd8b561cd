"""The suite: the strict schema of suite files and the YAML loader that reports file and line."""
