"""Local models: the store, GGUF metadata, the catalog of friendly names, and pulling from a hub."""
