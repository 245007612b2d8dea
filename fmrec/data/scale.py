"""MovieLens's rating scale (every layout: 0.5 to 5 stars), for the readers and the label threshold."""

from __future__ import annotations

RATING_MIN, RATING_MAX = 0.5, 5.0
