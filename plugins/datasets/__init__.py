"""Dataset plugins: one module per dataset family, each a reader of the family's on-disk layout."""
