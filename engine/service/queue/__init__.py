"""The durable task queue: one interface, an embedded SQLite store."""
