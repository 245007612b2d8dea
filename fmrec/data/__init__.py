"""Data sources: MovieLens download, readers for every MovieLens layout, and the synthetic generator."""
