"""Graph formats: depthgraph files, ComfyUI workflows, PNG text chunks and request bodies."""
