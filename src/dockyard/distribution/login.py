"""``login``: check credentials against a registry's ``/v2/`` and keep them in config.json."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dockyard.distribution import credentials
from dockyard.distribution.credentials import Credentials
from dockyard.errors import AuthenticationError
from dockyard.reference import DOCKER_HUB_REGISTRY

if TYPE_CHECKING:
    from dockyard.config import Settings


def registry_host(server: str | None) -> str:
    """Where to connect for a login server as typed (nothing or a Hub name means Docker Hub)."""
    key = credentials.server_key(server or "")
    return DOCKER_HUB_REGISTRY if key == credentials.INDEX_SERVER else key


def verify(settings: "Settings", server: str | None, creds: Credentials) -> None:
    """Raise unless the registry accepts ``creds`` (GET /v2/, through the token flow if it has one)."""
    from dockyard.distribution.client import RegistryClient

    host = registry_host(server)

    async def check() -> None:
        async with RegistryClient(settings, host, creds) as client:
            await client.ping()
            if client.auth.challenge is None:
                return  # the registry asked for nothing: any credentials "work", as with Docker
            if client.auth.challenge.scheme == "bearer" and client.auth.token_requests == 0:
                raise AuthenticationError(f"login to {host} failed: the registry issued no token")

    try:
        asyncio.run(check())
    except AuthenticationError as e:
        message = e.message
        raise AuthenticationError(message if message.startswith("login to") else f"login to {host} failed: {message}") from None


def login(settings: "Settings", server: str | None, creds: Credentials) -> str:
    """Verify and store; returns the config.json key the credentials went under."""
    verify(settings, server, creds)
    return credentials.store(server or credentials.INDEX_SERVER, creds)
