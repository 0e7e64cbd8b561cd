"""Reference data: extxyz structures with energy and force labels, parsed once and validated."""
