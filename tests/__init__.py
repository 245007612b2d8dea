"""The test suite: one folder per source folder, shared helpers in tests/support."""
