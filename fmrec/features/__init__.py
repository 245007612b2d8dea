"""Feature and training-row construction shared by the preprocess step, the tuner and the benchmarks."""
