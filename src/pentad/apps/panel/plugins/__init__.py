"""Panel plugins: manifests, capabilities, signatures, the marketplace and the out-of-process host."""
