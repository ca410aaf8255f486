"""A private nginx (Debian's) on a free port of 127.0.0.1, load-balancing round-robin over
upstreams: the load balancer in front of registry replicas in tests and benches.

    with Nginx(["127.0.0.1:5001", "127.0.0.1:5002"]) as lb:
        ...  # lb.url; each response names the replica in ``X-Upstream``

Streaming both ways (no request or response buffering, no body size limit), HTTP/1.1 with
keep-alive to the upstreams, the client's Host passed on, no sticky sessions. A request
that fails to connect to a dead upstream is retried on the next one only when nginx may
(idempotent methods); a PATCH or PUT in flight on a killed upstream fails with 502, as
it would in production.
"""

from __future__ import annotations

from dockyard.testing.servers import Balancer

CONF = """\
user root;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    upstream replicas {{
{servers}
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        # Unbuffered, nginx moves at most one proxy_buffer_size per read (4 KiB by default):
        # a syscall pair per page made nginx the bottleneck (6.8 CPU s per 7.5 GiB pulled).
        proxy_buffer_size 1m;
        proxy_buffers 4 1m;
        proxy_busy_buffers_size 2m;
        client_body_buffer_size 1m;
        proxy_http_version 1.1;
        location / {{
            proxy_pass http://replicas;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_connect_timeout 2s;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx(Balancer):
    """nginx in front of ``upstreams`` (``host:port`` each), round-robin."""

    binary_name = "nginx"
    name = "nginx"
    dir_prefix = "dockyard-nginx-"
    log_name = "nginx.log"
    start_timeout = 10.0

    def configure(self) -> None:
        assert self.dir is not None
        (self.dir / "tmp").mkdir(exist_ok=True)
        # max_fails=1: an upstream that refused a connection sits out fail_timeout seconds.
        servers = "\n".join(f"        server {u} max_fails=1 fail_timeout={self.fail_timeout:g}s;"
                            for u in self.upstreams)
        conf = CONF.format(workers=self.workers, dir=self.dir, servers=servers, port=self.port)
        (self.dir / "nginx.conf").write_text(conf)

    def command(self) -> list[str]:
        assert self.dir is not None
        return [self.binary, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e", "stderr",
                "-g", "daemon off;"]
