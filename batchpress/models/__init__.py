"""Tables, one a module; importing this package registers them all on the metadata."""

from batchpress.models.image import Image, ImageState
from batchpress.models.processing_request import ProcessingRequest, RequestStatus
from batchpress.models.product import Product

__all__ = ["Image", "ImageState", "ProcessingRequest", "Product", "RequestStatus"]
