"""Console entry points; each ``main`` parses its own argv into a fresh ``conf``."""
