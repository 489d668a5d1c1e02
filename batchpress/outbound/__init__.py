"""Outbound HTTP (image downloads, webhooks) that cannot be pointed at the service's own network.

A user chooses the URLs we fetch, so each connection goes only to an address checked against ``guard``'s policy,
pinned by ``transport`` so that a second DNS answer cannot swap in an internal one.
"""

from batchpress.outbound.guard import OutboundBlocked, OutboundPolicy
from batchpress.outbound.transport import GuardedTransport, deadline

__all__ = ["GuardedTransport", "OutboundBlocked", "OutboundPolicy", "deadline"]
