"""The local face index: SQLite metadata, memory-mapped embeddings, exact cosine search."""
