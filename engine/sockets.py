"""The names of the socket types nodes exchange (DESIGN.md §2). Widget types are in `engine.registry`.

IMAGE          float tensor [B, H, W, 3] in 0..1 (ComfyUI's layout, so images interchange)
MASK           float tensor [B, H, W] in 0..1; 1 = regenerate, 0 = keep
DEPTH          float tensor [B, 1, H, W], relative inverse depth: larger = nearer
LATENT         {"samples": [B, 4, H/8, W/8], ...} with an optional noise mask
CONDITIONING   text embeddings [B, 77, 1024]
MODEL, CLIP, VAE, DEPTH_MODEL   handles from the model manager
GRID_LABELS    a comparison grid's column and row labels (nodes.grid.GridLabels)
"""

IMAGE = "IMAGE"
MASK = "MASK"
DEPTH = "DEPTH"
LATENT = "LATENT"
CONDITIONING = "CONDITIONING"
MODEL = "MODEL"
CLIP = "CLIP"
VAE = "VAE"
DEPTH_MODEL = "DEPTH_MODEL"
GRID_LABELS = "GRID_LABELS"
