"""What operators watch: readiness of the dependencies (``/readyz``) and Prometheus metrics (``/metrics``).

The routes live in ``endpoints``; the package itself imports nothing, so the CLI's probes load without the API."""
