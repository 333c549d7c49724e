"""depthgraph's engine: node registry, graph files, validation, signatures, result cache, scheduler
and command line. It knows nothing of the node packs it runs (they are found through entry points)."""

__version__ = "0.1.0"
