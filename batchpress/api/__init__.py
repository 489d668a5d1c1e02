"""The HTTP API: upload a CSV, read a request's status, fetch compressed images."""
