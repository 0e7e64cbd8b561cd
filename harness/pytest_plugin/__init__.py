"""The pytest plugin: options, collection of suite files into items, the summary and results."""
