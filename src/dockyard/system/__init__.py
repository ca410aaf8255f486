"""The engine's whole-root verbs, shared by the CLI's ``system`` commands and (later) the API:
``leftovers`` (what dead processes left and nothing references), ``prune`` (``system prune``),
``usage`` (``system df``) and ``check`` (``system check``, an fsck of the root)."""
