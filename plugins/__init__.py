"""sdbench's built-in plugins: datasets, backbones and strategies, registered through the public hooks."""
