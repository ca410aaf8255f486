"""Container networking: bridges, addresses, NAT and published ports, names.

  store.py      networks, endpoints and published ports in the state DB (IPAM)
  rtnl.py       a small rtnetlink client: links, bridges, veths, addresses, routes
  netns.py      named network namespaces under the run root
  firewall.py   our own tagged iptables chains: egress NAT, forwarding, published ports
  dnsd.py       the per-host DNS responder for container names
  attach.py     one container's network: set up before the runtime's create, torn down on exit
  service.py    ``engine.networks``: create, ls, inspect, rm, connect, disconnect, prune, reload
"""
