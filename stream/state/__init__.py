"""Redis-backed derived state: membership, sketches, trends and jobs."""
