"""depthgraph's built-in nodes, one module per family. The engine finds them through the
`depthgraph.nodes` entry point (pyproject.toml) and registers every node declared in these modules."""
