"""Running prompts on several engines: Ray actors, one per device, behind one queue.

Nothing here is imported unless `--executor ray` is asked for, and Ray itself only by
`ray_backend`; `routing`, `shipping` and `worker` are plain Python, testable without a cluster.
"""
