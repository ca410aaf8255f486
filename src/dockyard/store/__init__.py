"""Local stores: content (blobs by digest), layers (unpacked), images (names), sqlite state."""
