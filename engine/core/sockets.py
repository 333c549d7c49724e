"""The types an input or output can have.

Socket types, the values nodes pass along links:

IMAGE          float tensor [B, H, W, 3] in 0..1 (ComfyUI's layout, so images interchange)
MASK           float tensor [B, H, W] in 0..1; 1 = regenerate, 0 = keep
DEPTH          float tensor [B, 1, H, W], relative inverse depth: larger = nearer
LATENT         latents [B, 4, H/8, W/8] with what noising and sampling need (nodes.latent_value.Latent)
CONDITIONING   text embeddings [B, 77, width] (1024 for SD 2; pooled and size conditioning for SDXL;
               nodes.conditioning_value.Conditioning)
MODEL, CLIP, VAE, DEPTH_MODEL, CONTROL_NET   handles from the model manager
GRID_LABELS    a comparison grid's column and row labels (nodes.grid.GridLabels)

Widget types, values typed in the editor (or given on the command line) rather than linked: INT,
FLOAT, STRING, BOOLEAN and COMBO (one of a list). An output of type ANY (ComfyUI's "*") may feed any
input.
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
CONTROL_NET = "CONTROL_NET"
GRID_LABELS = "GRID_LABELS"

INT = "INT"
FLOAT = "FLOAT"
STRING = "STRING"
BOOLEAN = "BOOLEAN"
COMBO = "COMBO"
WIDGET_TYPES = frozenset({INT, FLOAT, STRING, BOOLEAN, COMBO})
ANY = "*"
