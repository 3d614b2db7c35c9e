"""Integration tests of the Redis-backed state, each against a private redis-server."""
