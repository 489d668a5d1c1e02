"""The ``batchpress`` command line."""
