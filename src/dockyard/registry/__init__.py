"""dockyard's OCI registry server (OCI Distribution Spec v1.1), independent of the engine.

Layout: ``app`` (routing, auth enforcement, errors, access log), ``handlers/`` (one
module per route family), ``storage/`` (the driver seam: filesystem, s3), ``index``
(tags, catalog, links, referrers), ``uploads`` (sessions), ``manifests``
(validation), ``auth`` (htpasswd, tokens), ``gc`` (online garbage collection),
``settings`` and ``server``.
"""
