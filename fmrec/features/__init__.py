"""Feature construction shared by preprocess, evaluation and serving."""
