"""Batches (work in progress)."""

from __future__ import annotations

from moonbase.console.pages import console_router

router = console_router()
