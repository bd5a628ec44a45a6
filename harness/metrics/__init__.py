"""Metrics shared by dataset plugins."""
