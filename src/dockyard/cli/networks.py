"""Network commands: ``network create|ls|inspect|rm|connect|disconnect|prune|reload`` and ``port``."""

from __future__ import annotations

import sys

import click

from dockyard.cli import common

from dockyard.cli.quick import NETWORK_HEADERS  # noqa: F401 - the name other modules use


@click.command()
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network.")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", multiple=True, help="IPv4 Gateway for the master subnet.")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--label", multiple=True, help="Set metadata on a network.")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options.")
@click.option("--attachable", is_flag=True, hidden=True)
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking (not supported).")
@click.argument("name")
def create(driver: str, subnet: tuple[str, ...], gateway: tuple[str, ...], ip_range: tuple[str, ...],
           internal: bool, label: tuple[str, ...], opt: tuple[str, ...], attachable: bool, ipv6: bool,
           name: str) -> None:
    """Create a network."""
    from dockyard.errors import DockyardError

    if ipv6:
        raise DockyardError("IPv6 networks are not supported")
    if len(subnet) > 1 or len(gateway) > 1 or len(ip_range) > 1:
        raise DockyardError("one --subnet, --gateway and --ip-range per network is supported")
    net = common.engine().networks.create(
        name, driver=driver, subnet=subnet[0] if subnet else "", gateway=gateway[0] if gateway else "",
        ip_range=ip_range[0] if ip_range else "", internal=internal, labels=common.key_values(label),
        options=common.key_values(opt))
    click.echo(net.id)


@click.command(name="ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge').")
@click.option("--format", "format_", help="Format output using a custom template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
def ls(filters: tuple[str, ...], format_: str | None, no_trunc: bool, quiet: bool) -> None:
    """List networks."""
    from dockyard.cli import quick

    quick.network_ls(common.engine(), filters, format_, no_trunc, quiet)


@click.command()
@click.option("-f", "--format", "format_", help="Format output using a custom template.")
@click.option("-v", "--verbose", is_flag=True, hidden=True)
@click.argument("names", nargs=-1, required=True)
def inspect(format_: str | None, verbose: bool, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    from dockyard.cli import quick

    quick.network_inspect(common.engine(), names, format_)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@click.argument("names", nargs=-1, required=True)
def rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    from dockyard.cli.ops import each as _each
    from dockyard.errors import NotFoundError

    networks = common.engine().networks

    def remove(name: str) -> None:
        try:
            networks.remove(name)
        except NotFoundError:
            if not force:
                raise NotFoundError(f"No such network: {name}") from None

    _each(names, remove)


@click.command()
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container.")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104).")
@click.option("--link", multiple=True, hidden=True)
@click.argument("network")
@click.argument("container")
def connect(alias: tuple[str, ...], ip: str | None, link: tuple[str, ...], network: str, container: str) -> None:
    """Connect a container to a network."""
    common.engine().networks.connect(network, container, aliases=alias, ip=ip or "")


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@click.argument("network")
@click.argument("container")
def disconnect(force: bool, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    common.engine().networks.disconnect(network, container, force=force)


@click.command()
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
def prune(filters: tuple[str, ...], force: bool) -> None:
    """Remove all unused networks."""
    from dockyard.cli.images import confirm, parse_filters

    if not force and not confirm("WARNING! This will remove all custom networks not used by at least one "
                                 "container.\nAre you sure you want to continue?"):
        return
    removed = common.engine().networks.prune(parse_filters(filters))
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(n + "\n" for n in removed))


@click.command()
def reload() -> None:
    """Re-create the bridges and firewall rules of every network from the state (after a
    reboot, or when another tool flushed the rules)."""
    for name in common.engine().networks.reload():
        click.echo(name)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False, metavar="[PRIVATE_PORT[/PROTO]]")
def port(container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    from dockyard.cli import quick

    quick.port(common.engine(), container, private_port)
