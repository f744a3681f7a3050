"""Server launchers shared by tests and benchmarks."""
