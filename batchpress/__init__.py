"""batchpress: bulk product-image compression behind a CSV upload."""

__version__ = "0.1.0"
