"""A private HAProxy (Debian's) on a free port of 127.0.0.1, load-balancing round-robin over
upstreams, request by request: the other load balancer in front of registry replicas.

    with HAProxy(["127.0.0.1:5001", "127.0.0.1:5002"]) as lb:
        ...  # lb.url; each response names the replica in ``X-Upstream``

Same contract as ``testing.nginx.Nginx``: streaming both ways, no body size limit,
keep-alive to the upstreams, the client's Host passed on, no sticky sessions; a request
that cannot connect to a dead upstream is sent to the next one, a request in flight on
a killed upstream fails (502), as in production.

Why it is here beside nginx: HAProxy moves response bodies with splice(2), pipe to
socket inside the kernel, where nginx reads every byte into its buffers and writes it
out again. For blob pulls that copy is what a load balancer costs (measured in
bench/registry.py).
"""

from __future__ import annotations

from dockyard.testing.servers import Balancer

CONF = """\
global
    maxconn 4096
    nbthread {threads}
    # Fewer splice calls per byte: a pipe of 64 KiB took ~30 KiB per call.
    tune.pipesize 1048576
    pidfile {dir}/haproxy.pid
    log stderr format raw local0 warning

defaults
    mode http
    log global
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    # Bodies move pipe to socket in the kernel (splice), never through HAProxy's buffers.
    option splice-request
    option splice-response
    # A connection refused by a dead upstream is retried on another one (redispatch).
    retries 2
    option redispatch 1
    http-reuse always

frontend front
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    # An upstream that refused a connection sits out fail_timeout seconds (nginx's max_fails=1).
    default-server observe layer4 error-limit 1 on-error mark-down check inter {fail_ms}ms rise 1 fall 1
    http-response set-header X-Upstream %[srv_name]
{servers}
"""


class HAProxy(Balancer):
    """HAProxy in front of ``upstreams`` (``host:port`` each), round-robin per request."""

    binary_name = "haproxy"
    name = "haproxy"
    dir_prefix = "dockyard-haproxy-"
    log_name = "haproxy.log"
    start_timeout = 10.0

    def configure(self) -> None:
        assert self.dir is not None
        # Named by address, so X-Upstream reads like nginx's $upstream_addr.
        servers = "\n".join(f"    server {u} {u}" for u in self.upstreams)
        conf = CONF.format(threads=self.workers, dir=self.dir, port=self.port, servers=servers,
                           fail_ms=max(100, int(self.fail_timeout * 1000)))
        (self.dir / "haproxy.cfg").write_text(conf)

    def command(self) -> list[str]:
        assert self.dir is not None
        return [self.binary, "-f", str(self.dir / "haproxy.cfg"), "-db"]
