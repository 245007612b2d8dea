"""Helpers shared by the test folders: serving worlds, fault server, training channels, model files."""
