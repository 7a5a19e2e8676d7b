"""Files: uploads, the blob store they live in, and what is extracted from them."""
