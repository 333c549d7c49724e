"""An example node pack: one image node (Add Border) and one depth node with a lazy input (Depth
Ensemble). Point depthgraph at the folder above it to load it:

    custom_nodes_dirs: [examples/custom_nodes]     # in the settings file

Every module of this package is imported and the nodes declared in it are registered; this file needs
to import nothing. examples/custom_nodes/README.md explains how the nodes are written.
"""
