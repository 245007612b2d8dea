"""The API Gateway twin in front of the recommend Lambda's own handler."""

# Lambda environments per API twin process; each takes one event at a time (twins/api/gateway.py create_app).
# Four let one process overlap handler work with its waits on the endpoint.
DEFAULT_ENVIRONMENTS = 4
