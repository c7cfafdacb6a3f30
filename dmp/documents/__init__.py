"""XDS documents: metadata registry, lifecycle, encrypted blob store."""
