"""OCI and Docker image models: media types, platforms."""
