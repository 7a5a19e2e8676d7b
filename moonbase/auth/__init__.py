"""Who is calling: API keys checked from memory, and the caller they name."""
