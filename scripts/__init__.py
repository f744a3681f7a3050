"""Project scripts."""
