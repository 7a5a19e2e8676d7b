"""Turning an uploaded document into the text a model reads.

``document.extract`` sniffs the format from the content and hands the file
to one extractor per family; each returns an ``Extracted``. It runs only in
the inspection child process (``files/inspect_worker``), never in the server.
"""
