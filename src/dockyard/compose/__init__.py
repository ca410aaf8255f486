"""Compose: the compose-spec loader (files, interpolate, merge, schema, normalize, model)
and the project verbs over the engine (convert, labels, project, ...).

The loader turns compose files into the canonical model Docker Compose v2 prints for
`docker compose config --format json`; see model.load.
"""
