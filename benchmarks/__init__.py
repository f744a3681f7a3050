"""EntroQ benchmarks: `hatch run bench:run [--backend NAME_OR_URL ...] [--json FILE]`."""
