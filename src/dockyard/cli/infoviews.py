"""The bodies of ``version`` and ``info`` (also ``system info``), free of click so a fast
path can run them without it: Docker's text layouts, or ``--format``. The facts come from
``dockyard.system.version`` and ``dockyard.system.info``; this module only prints them."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any



def _format(template: str, data: "Any") -> None:
    from dockyard.cli import formatting as fmt

    sys.stdout.write(fmt.Template(template).render(data) + "\n")


def show_version(format_: "str | None") -> None:
    from dockyard.runtime import RUNTIMES
    from dockyard.system.version import version_info

    data = version_info(RUNTIMES[0])
    if format_:
        _format(format_, data)
        return
    sys.stdout.write(render_version(data))


def show_info(engine: "Any", format_: "str | None", debug: bool) -> None:
    from dockyard.system.info import info as gather

    data = gather(engine, debug=debug)
    if format_:
        _format(format_, data)
        return
    sys.stdout.write(render_info(data))
    sys.stdout.flush()
    if data.get("Warnings"):
        sys.stderr.write("\n".join(data["Warnings"]) + "\n")


def render_version(data: "dict[str, Any]") -> str:
    """``docker version``'s layout (cli/command/system/version.go), "Go version" read as Python's."""
    c, s = data["Client"], data["Server"]
    lines = [f"Client: {c['Platform']['Name']}".rstrip(),
             f" Version:           {c['Version']}",
             f" API version:       {c['ApiVersion']}",
             f" Python version:    {c['GoVersion']}",
             f" Git commit:        {c['GitCommit']}",
             f" Built:             {c['BuildTime']}",
             f" OS/Arch:           {c['Os']}/{c['Arch']}",
             f" Context:           {c['Context']}",
             f" Experimental:      {str(c['Experimental']).lower()}",
             "",
             f"Server: {s['Platform']['Name']}".rstrip()]
    for component in s["Components"]:
        details = component.get("Details") or {}
        if component["Name"] == "Engine":
            lines += [" Engine:",
                      f"  Version:          {component['Version']}",
                      f"  API version:      {details['ApiVersion']} (minimum version {details['MinAPIVersion']})",
                      f"  Python version:   {details['GoVersion']}",
                      f"  Git commit:       {details['GitCommit']}",
                      f"  Built:            {details['BuildTime']}",
                      f"  OS/Arch:          {details['Os']}/{details['Arch']}",
                      f"  Experimental:     {details['Experimental']}"]
        else:
            lines += [f" {component['Name']}:",
                      f"  Version:          {component['Version']}"]
            lines += [f"  {key}:{' ' * max(1, 17 - len(key))}{value}" for key, value in sorted(details.items())]
    return "\n".join(lines) + "\n"


def render_info(d: "dict[str, Any]") -> str:
    """``docker info``'s layout (cli/command/system/info.go, 20.10)."""
    from dockyard.cli.formatting import bytes_size

    client = d["ClientInfo"]
    lines = ["Client:",
             f" Context:    {client['Context']}",
             f" Debug Mode: {str(client['Debug']).lower()}"]
    if client.get("Plugins"):
        lines.append(" Plugins:")
        lines += [f"  {p['Name']}: {p.get('ShortDescription', '')}" for p in client["Plugins"]]
    lines += ["",
              "Server:",
              f" Containers: {d['Containers']}",
              f"  Running: {d['ContainersRunning']}",
              f"  Paused: {d['ContainersPaused']}",
              f"  Stopped: {d['ContainersStopped']}",
              f" Images: {d['Images']}",
              f" Server Version: {d['ServerVersion']}",
              f" Storage Driver: {d['Driver']}"]
    lines += [f"  {key}: {value}" for key, value in d["DriverStatus"]]
    lines += [f" Logging Driver: {d['LoggingDriver']}",
              f" Cgroup Driver: {d['CgroupDriver']}",
              f" Cgroup Version: {d['CgroupVersion']}",
              " Plugins:",
              f"  Volume: {' '.join(d['Plugins']['Volume'])}",
              f"  Network: {' '.join(d['Plugins']['Network'])}",
              f"  Log: {' '.join(d['Plugins']['Log'])}",
              f" Swarm: {d['Swarm']['LocalNodeState']}",
              f" Runtimes: {' '.join(d['Runtimes'])}",
              f" Default Runtime: {d['DefaultRuntime']}",
              f" Init Binary: {d['InitBinary']}"]
    if d["RuncCommit"]["ID"]:
        lines.append(f" runc version: {d['RuncCommit']['ID']}")
    if d["SecurityOptions"]:
        lines.append(" Security Options:")
        for option in d["SecurityOptions"]:
            fields = dict(kv.partition("=")[::2] for kv in option.split(","))
            lines.append(f"  {fields.get('name', option)}")
            if fields.get("profile"):
                lines.append(f"   Profile: {fields['profile']}")
    lines += [f" Kernel Version: {d['KernelVersion']}",
              f" Operating System: {d['OperatingSystem']}",
              f" OSType: {d['OSType']}",
              f" Architecture: {d['Architecture']}",
              f" CPUs: {d['NCPU']}",
              f" Total Memory: {bytes_size(d['MemTotal'])}",
              f" Name: {d['Name']}",
              f" ID: {d['ID']}",
              f" Docker Root Dir: {d['DockerRootDir']}",
              f" Debug Mode: {str(d['Debug']).lower()}"]
    for key, label in (("HttpProxy", "HTTP Proxy"), ("HttpsProxy", "HTTPS Proxy"), ("NoProxy", "No Proxy")):
        if d.get(key):
            lines.append(f" {label}: {d[key]}")
    lines += [f" Registry: {d['IndexServerAddress']}",
              " Labels:",
              f" Experimental: {str(d['ExperimentalBuild']).lower()}",
              " Insecure Registries:"]
    registry = d["RegistryConfig"]
    lines += [f"  {name}" for name, index in registry["IndexConfigs"].items() if not index["Secure"]]
    lines += [f"  {cidr}" for cidr in registry["InsecureRegistryCIDRs"]]
    if registry.get("Mirrors"):
        lines.append(" Registry Mirrors:")
        lines += [f"  {m}" for m in registry["Mirrors"]]
    lines.append(f" Live Restore Enabled: {str(d['LiveRestoreEnabled']).lower()}")
    return "\n".join(lines) + "\n\n"
