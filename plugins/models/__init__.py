"""Built-in backbone providers."""
