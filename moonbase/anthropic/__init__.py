"""Anthropic's Messages API as a translation onto the chat pipeline (``api.anthropic``)."""
