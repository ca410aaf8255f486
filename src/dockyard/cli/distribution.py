"""``pull``, ``push``, ``login``, ``logout``.

Only click is imported here: aiohttp and rich load inside the commands, so
``dockyard pull --help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from dockyard.cli import common


@click.command()
@click.option("--platform", "platform_", metavar="PLATFORM", help="Set platform if server is multi-platform capable (os/arch[/variant]).")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
def pull(platform_: str | None, quiet: bool, name: str) -> None:
    """Download an image from a registry."""
    from dockyard import reference
    from dockyard.distribution.progress import for_output
    from dockyard.distribution.pull import pull as pull_image
    from dockyard.oci import platform as platforms

    ref = reference.parse(name)
    wanted = platforms.parse(platform_) if platform_ else None
    engine = common.engine()
    progress = for_output(quiet)
    try:
        pull_image(engine, ref, platform=wanted, progress=progress)
    finally:
        progress.close()
    click.echo(str(ref))


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name", metavar="NAME[:TAG]")
def push(quiet: bool, name: str) -> None:
    """Upload an image to a registry."""
    from dockyard import reference
    from dockyard.distribution.progress import for_output
    from dockyard.distribution.push import push as push_image

    ref = reference.parse(name)
    engine = common.engine()
    progress = for_output(quiet)
    try:
        push_image(engine, ref, progress=progress)
    finally:
        progress.close()
    if quiet:
        click.echo(str(ref))


@click.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False)
def login(username: str | None, password: str | None, password_stdin: bool, server: str | None) -> None:
    """Log in to a registry.

    If no server is specified, the default is Docker Hub.
    """
    from dockyard.distribution import credentials
    from dockyard.distribution import login as logins
    from dockyard.errors import AuthenticationError, DockyardError

    settings = common.engine().settings
    if password and password_stdin:
        raise DockyardError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise DockyardError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)

    if not username and not password:
        stored = credentials.get(server or credentials.INDEX_SERVER)
        if stored is not None:
            click.echo("Authenticating with existing credentials...")
            try:
                logins.verify(settings, server, stored)
            except AuthenticationError as e:
                click.echo(f"Stored credentials invalid or expired: {e.message}", err=True)
            else:
                click.echo("Login Succeeded")
                return

    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise DockyardError("Cannot perform an interactive login from a non TTY device")
        username = click.prompt("Username", err=True).strip()
    if not password:
        if not interactive:
            raise DockyardError("Cannot perform an interactive login from a non TTY device")
        password = click.prompt("Password", hide_input=True, err=True)
    if not username or not password:
        raise DockyardError("Username and password are both required")
    logins.login(settings, server, credentials.Credentials(username, password))
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Log out from a registry.

    If no server is specified, the default is Docker Hub.
    """
    from dockyard.distribution import credentials

    key = credentials.server_key(server or "")
    if credentials.get(key) is None:
        click.echo(f"Not logged in to {key}")
        return
    click.echo(f"Removing login credentials for {key}")
    credentials.erase(key)
