"""The registry client: authentication, credentials, pull and push.

Import the submodule you need (``dockyard.distribution.pull``, ``.push``): they pull in
aiohttp, which the CLI loads only when a command talks to a registry.
"""
