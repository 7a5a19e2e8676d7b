"""The console's pages, one module each (its routes, its navigation entry)."""
