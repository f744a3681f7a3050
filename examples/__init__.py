"""Runnable examples of EntroQ in use."""
