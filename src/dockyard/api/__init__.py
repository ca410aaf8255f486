"""The Docker Engine API service (``dockyard system service``): a second front end over the
engine library, beside the CLI. Each module serves one of the API's nouns and only parses
requests and shapes answers; the work is the engine's.

Layout: ``server`` (listeners, idle timer, middlewares), ``http`` (routing with and without
the ``/v1.xx`` prefix, errors, query parsing, the per-thread engine), then one module per noun
(``system``, ``events``, ``usage``, ``containers``, ``archive``, ``streams``, ``execs``, ``images``,
``build``, ``networks``, ``volumes``).
"""
