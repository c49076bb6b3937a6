"""API resources, one module per URL subtree."""
