"""Batches: validated input files run line by line, exactly once, through the chat pipeline."""
