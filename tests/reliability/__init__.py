"""Fault-injection, resource-limit and security tests across the serving path."""
