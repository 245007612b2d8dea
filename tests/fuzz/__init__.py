"""Property-based tests across the codec, the request builder, the endpoint and the API."""
