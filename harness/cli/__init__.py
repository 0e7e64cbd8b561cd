"""The `mlff-harness` command: argparse sub-commands and the input checks they share."""
