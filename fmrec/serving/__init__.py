"""Serving-side code shared by the Lambda and the twins: the lookup artifacts and the request builder."""
