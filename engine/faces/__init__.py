"""Face detection and identity embeddings."""
