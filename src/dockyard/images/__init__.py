"""Image verbs of the engine: commit blobs into images, list, tag, remove, save, load, import."""
