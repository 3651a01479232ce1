"""The processing-task service: HTTP API, durable queue, workers."""
