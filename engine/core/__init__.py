"""The graph core: node declarations, graphs, validation, signatures, the result cache and the
executor. Torch-free; it knows models only through the `ModelProvider` protocol of `context`."""
