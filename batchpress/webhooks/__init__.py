"""Completion notifications, signed per Standard Webhooks, and delivered until the receiver takes them."""
