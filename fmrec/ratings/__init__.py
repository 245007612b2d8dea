"""Ratings posted through the API: the store interface, its SQLite and DynamoDB stores, fold-in, export."""
