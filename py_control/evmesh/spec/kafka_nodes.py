"""Kafka node listeners and clusters: names, ports and the checks on them.

A kafka listener L (port P) on broker B renders one more Envoy listener per broker node N,
`L-node-N` on port node_ports[N] (default P + 1 + N), proxying to the cluster `B-node-N`. The
ports are known once the nodes are: at validate time for nodes written in the spec, at render and
run time for discovered ones. Both times the same checks run (node_port_problems).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .models import Broker, Listener

MAX_PORT = 65535


def node_listener_name(listener: str, node_id: int) -> str:
    return f"{listener}-node-{node_id}"


def node_cluster_name(broker: str, node_id: int) -> str:
    return f"{broker}-node-{node_id}"


def _node_ports_path(index: int, node_id: int, explicit: bool) -> str:
    path = f"listeners[{index}].kafka.node_ports"
    return f"{path}.{node_id}" if explicit else path


def planned_node_ports(lst: Listener, node_ids: Iterable[int] | None) -> list[tuple[int, int, bool]]:
    """(node id, port, written in node_ports?) for each node of a kafka listener. node_ids None
    (nodes not known yet): only the ports written in node_ports."""
    written = dict(lst.kafka.node_ports) if lst.kafka else {}
    if node_ids is None:
        return [(n, p, True) for n, p in sorted(written.items())]
    return [(n, lst.node_port(n), n in written) for n in sorted(set(node_ids))]


def node_port_problems(
    listeners: Sequence[Listener | None],
    brokers: Sequence[Broker | None],
    admin_port: int,
    node_ids: Mapping[str, Iterable[int]],
) -> list[tuple[str, str]]:
    """(spec path, problem) for node ports over 65535, node ports that clash with any other port of
    the mesh, and node listener/cluster names that are taken. node_ids: broker name -> its node ids,
    for the brokers whose nodes are known (the others: only the ports written in node_ports)."""
    problems: list[tuple[str, str]] = []
    taken: dict[int, str] = {}
    if admin_port:
        taken[admin_port] = "the admin port"
    for j, lst in enumerate(listeners):
        if lst is not None:
            taken.setdefault(lst.port, f"the port of listeners[{j}]")
    listener_names = {lst.name: j for j, lst in enumerate(listeners) if lst is not None}
    for i, lst in enumerate(listeners):
        if lst is None or lst.protocol != "kafka":
            continue
        ids = node_ids.get(lst.broker)
        for node_id, port, explicit in planned_node_ports(lst, ids):
            path = _node_ports_path(i, node_id, explicit)
            if port > MAX_PORT:
                problems.append((path, f"node {node_id} needs a port here: its default "
                                       f"{lst.port} + 1 + {node_id} = {port} is over {MAX_PORT}"))
                continue
            if port in taken:
                problems.append((path, f"port {port} of node {node_id} is also {taken[port]}"))
            else:
                taken[port] = f"the port of node {node_id} of listeners[{i}]"
            name = node_listener_name(lst.name, node_id)
            if ids is not None and name in listener_names:
                problems.append((f"listeners[{listener_names[name]}].name",
                                 f'listener name "{name}" is also the name of the listener of node {node_id} '
                                 f"of listeners[{i}] (<listener>-node-<id>)"))
    broker_names = {b.name: k for k, b in enumerate(brokers) if b is not None}
    for m, b in enumerate(brokers):
        if b is None or b.name not in node_ids:
            continue
        for node_id in sorted(set(node_ids[b.name])):
            name = node_cluster_name(b.name, node_id)
            if name in broker_names:
                problems.append((f"brokers[{broker_names[name]}].name",
                                 f'broker name "{name}" is also the name of the cluster of node {node_id} '
                                 f"of brokers[{m}] (<broker>-node-<id>)"))
    return problems
