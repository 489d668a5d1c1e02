"""What operators watch: readiness of the dependencies (``/readyz``) and Prometheus metrics (``/metrics``)."""

from batchpress.observability.endpoints import router

__all__ = ["router"]
