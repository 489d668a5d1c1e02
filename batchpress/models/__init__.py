"""Tables, one a module; importing this package registers them all on the metadata."""

from batchpress.models.disabled_webhook_url import DisabledWebhookUrl
from batchpress.models.doomed_output import DoomedOutput
from batchpress.models.image import Image, ImageState, Reuse
from batchpress.models.processing_request import ProcessingRequest, RequestStatus
from batchpress.models.product import Product
from batchpress.models.source_validator import SourceValidator
from batchpress.models.stored_output import StoredOutput
from batchpress.models.webhook_attempt import WebhookAttempt
from batchpress.models.webhook_event import WebhookEvent, WebhookState

__all__ = [
    "DisabledWebhookUrl",
    "DoomedOutput",
    "Image",
    "ImageState",
    "ProcessingRequest",
    "Product",
    "RequestStatus",
    "Reuse",
    "SourceValidator",
    "StoredOutput",
    "WebhookAttempt",
    "WebhookEvent",
    "WebhookState",
]
