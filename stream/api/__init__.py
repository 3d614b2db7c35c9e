"""The query API and dashboard (FastAPI)."""
