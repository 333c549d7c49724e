"""The application around the core: settings, the engine that assembles core and models, the CLI,
batch runs, the prompt store, queue and outbox, and the backends that run prompts."""
