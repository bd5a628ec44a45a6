"""Built-in teacher strategies."""
