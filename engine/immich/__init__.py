"""Immich: its REST API, a local mirror of its faces and people, and the cross-check."""
