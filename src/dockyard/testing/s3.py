"""moto's S3 server on loopback (``python -m moto.server``), a stand-in for S3 in tests."""

from __future__ import annotations

import sys
from typing import Any

from dockyard.testing.servers import ServerProcess, http_status


class MotoS3(ServerProcess):
    name = "moto server"
    dir_prefix = "dockyard-moto-"

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]

    def env(self) -> dict[str, str]:
        return {**super().env(), "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}

    def ready(self) -> bool:
        return http_status(self.port, "/") is not None

    def s3_config(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """The ``s3`` section of a dockyard registry config for ``bucket`` on this server."""
        return {"bucket": bucket, "endpoint": self.endpoint, "region": "us-east-1", "access_key": "test",
                "secret_key": "test", "prefix": prefix, "create_bucket": True}
