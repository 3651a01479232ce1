"""AMP: local, GPU-accelerated processing for self-hosted photo libraries."""

__version__ = "0.1.0"
