"""Placeholder, replaced by the dataset plugin."""
