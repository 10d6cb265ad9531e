"""Exposure and firewalls on Linux, inside two network namespaces joined by a veth pair:
a server bound to 127.0.0.1 is unreachable from the other namespace while 0.0.0.0 is
reachable; nftables `reject` answers at once, `drop` leaves the client waiting for its own
timeout (timed, beside a port with no rule); an allowlist by source address. Nothing
touches the host's network: the namespaces exist only while this process holds them.

Run: python snippets/security/firewall_netns.py   (as root: it creates network namespaces)
Needs: NFT_BIN
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

TIMEOUT = 0.2  # the client's connect timeout, seconds (what a `drop` costs it)
REPEATS = 5  # connects per rule, interleaved
PORT = 8080  # a fixed port is safe here: the server's namespace is new and empty
READY_PORT = 9  # only for the readiness handshake
SERVER, CLIENT, OTHER_CLIENT = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def find_tools() -> tuple[str, str]:
    """(nft, ip): NFT_BIN if set; exit with one line saying what is missing."""
    if sys.platform != "linux":
        sys.exit("network namespaces and nftables are Linux's: run this on Linux, as root")
    if os.geteuid() != 0:
        sys.exit(f"creating network namespaces needs root: sudo {sys.executable} {sys.argv[0]}")
    sbin = "/usr/sbin:/sbin:/usr/bin:/bin"
    nft = os.environ.get("NFT_BIN") or shutil.which("nft", path=sbin)
    ip = shutil.which("ip", path=sbin)
    if not (nft and ip):
        sys.exit("nft or ip is not installed: sudo apt-get install nftables iproute2")
    return nft, ip


# --8<-- [start:namespaces]
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000  # <sched.h>; os.unshare/os.setns need Python 3.12


def _check(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _this_thread_ns() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY)


@contextlib.contextmanager
def inside(ns: int) -> Iterator[None]:
    """Run the block with this thread in network namespace `ns` (an open fd). A socket
    belongs to the namespace it was created in, for life; a child process inherits the
    namespace of the thread that started it."""
    home = _this_thread_ns()
    try:
        _check(libc.setns(ns, CLONE_NEWNET))
        yield
    finally:
        _check(libc.setns(home, CLONE_NEWNET))
        os.close(home)


def new_namespace() -> int:
    """A new, empty network namespace (only a `lo`, down), as an fd that keeps it alive:
    when the last fd, socket and process in it are gone, the kernel removes it."""
    home = _this_thread_ns()
    try:
        _check(libc.unshare(CLONE_NEWNET))
        return _this_thread_ns()
    finally:
        _check(libc.setns(home, CLONE_NEWNET))
        os.close(home)


@dataclass
class Net:
    server: int  # namespace fds
    client: int
    nft: str
    ip: str

    def run(self, ns: int, *command: str, stdin: str | None = None) -> str:
        with inside(ns):
            done = subprocess.run(
                command, input=stdin, capture_output=True, text=True, timeout=10, check=False
            )
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def firewall(self, ruleset: str) -> None:
        """Replace the server namespace's whole nftables ruleset (only that namespace's)."""
        self.run(self.server, self.nft, "-f", "-", stdin="flush ruleset\n" + ruleset)

    def icmp_ratelimit(self, ms: int) -> None:
        """The server namespace's net.ipv4.icmp_ratelimit: the least time between two ICMP
        errors to one destination, in ms (0: no limit; Linux's default: 1000, burst 6)."""
        with inside(self.server), open("/proc/sys/net/ipv4/icmp_ratelimit", "w") as file:
            file.write(str(ms))

    def ruleset(self) -> str:
        return self.run(self.server, self.nft, "list", "ruleset")


@contextlib.contextmanager
def two_namespaces() -> Iterator[Net]:
    """server (veth-s, 10.0.0.1/24) <-- veth pair --> client (veth-c, 10.0.0.2 and .3)."""
    nft, ip = find_tools()
    net = Net(new_namespace(), new_namespace(), nft, ip)
    try:
        peer = f"/proc/{os.getpid()}/fd/{net.client}"  # `ip ... netns` takes a file too
        net.run(net.server, ip, "link", "add", "veth-s", "type", "veth", "peer", "veth-c",
                "netns", peer)  # fmt: skip
        for ns, dev, addresses in [
            (net.server, "veth-s", [SERVER]),
            (net.client, "veth-c", [CLIENT, OTHER_CLIENT]),
        ]:
            for address in addresses:
                net.run(ns, ip, "addr", "add", f"{address}/24", "dev", dev)
            net.run(ns, ip, "link", "set", dev, "up")
            net.run(ns, ip, "link", "set", "lo", "up")
        net.icmp_ratelimit(0)  # see the page: Linux rate-limits ICMP errors per destination
        wait_for_the_link(net)
        yield net
    finally:  # the veth pair goes with its namespaces
        os.close(net.server)
        os.close(net.client)


def wait_for_the_link(net: Net) -> None:
    """Ready when one handshake crosses the veth pair. Linux turns a veth's carrier on when
    both ends are up but starts sending on it only when its link-watch work runs (up to a
    second later, or more on a busy machine): until then packets are dropped, and a 0.2 s
    connect times out. A dropped SYN is sent again after 1 s, so a 10 s timeout waits."""
    with listening(net, SERVER, [READY_PORT]):
        outcome, seconds = connect(net, net.client, SERVER, READY_PORT, timeout=10)
    if outcome != "connected":
        raise RuntimeError(f"the veth pair carried no handshake in {seconds:.1f} s: {outcome}")


# --8<-- [end:namespaces]


# --8<-- [start:sockets]
@contextlib.contextmanager
def listening(net: Net, host: str, ports: list[int]) -> Iterator[None]:
    """A server in the server namespace, listening on host:port for each port. Nothing
    calls accept(): the kernel completes a TCP handshake for a listening socket alone."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with inside(net.server):  # the sockets are created in, and stay in, that namespace
        socks = [socket.socket(family, socket.SOCK_STREAM) for _ in ports]
    try:
        for sock, port in zip(socks, ports, strict=True):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))  # "::" keeps the OS default for IPV6_V6ONLY
            sock.listen()
        yield
    finally:
        for sock in socks:
            sock.close()


def connect(
    net: Net, ns: int, host: str, port: int = PORT, source: str = "", timeout: float = TIMEOUT
) -> tuple[str, float]:
    """Connect from namespace `ns` (from `source` if given): (what happened, seconds)."""
    with inside(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        start = time.perf_counter()
        try:
            sock.connect((host, port))
            outcome = "connected"
        except TimeoutError:
            outcome = "timed out"
        except OSError as error:  # ECONNREFUSED, EHOSTUNREACH ...
            outcome = f"{errno.errorcode[error.errno]} ({error.strerror})"
        return outcome, time.perf_counter() - start


# --8<-- [end:sockets]


# --8<-- [start:exposure]
BINDS = ["127.0.0.1", SERVER, "0.0.0.0", "::"]


def exposure(net: Net) -> dict[str, tuple[str, str]]:
    """For each bind address: (from inside the server's namespace to 127.0.0.1,
    from the other namespace over the veth to 10.0.0.1)."""
    table = {}
    for host in BINDS:
        with listening(net, host, [PORT]):
            table[host] = (
                connect(net, net.server, "127.0.0.1")[0],
                connect(net, net.client, SERVER)[0],
            )
    return table


# --8<-- [end:exposure]


# --8<-- [start:verdicts]
VERDICTS = {  # port -> the rule for it; 8080 has none: the control
    8080: "",
    8081: "reject",
    8082: "reject with tcp reset",
    8083: "reject with icmpx admin-prohibited",
    8084: "drop",
}
VERDICT_RULES = (
    "table inet filter {\n"
    "    chain input {\n"
    "        type filter hook input priority filter; policy accept;\n"
    + "".join(f"        tcp dport {p} counter {v}\n" for p, v in VERDICTS.items() if v)
    + "    }\n}\n"
)


def verdicts(net: Net, repeats: int = REPEATS) -> dict[int, tuple[set[str], list[float]]]:
    """Every port has a listener, so only the rule differs. Ports taken in turn, `repeats`
    rounds: port -> (the outcomes seen, the seconds each connect took)."""
    seen: dict[int, tuple[set[str], list[float]]] = {p: (set(), []) for p in VERDICTS}
    net.firewall(VERDICT_RULES)
    with listening(net, "0.0.0.0", list(VERDICTS)):
        for _ in range(repeats):
            for port in VERDICTS:
                outcome, seconds = connect(net, net.client, SERVER, port)
                seen[port][0].add(outcome)
                seen[port][1].append(seconds)
    return seen


# --8<-- [end:verdicts]


# --8<-- [start:allowlist]
ALLOWLIST = """\
table inet filter {
    set allowed {
        type ipv4_addr
        elements = { 10.0.0.2 }
    }
    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        icmpv6 type { nd-neighbor-solicit, nd-router-advert, nd-neighbor-advert } accept
        ip saddr @allowed tcp dport 8080 accept
    }
}
"""


def allowlist(net: Net, ruleset: str = ALLOWLIST) -> dict[str, str]:
    """Connect from each client address, with no ruleset (the control) and with `ruleset`."""
    out = {}
    with listening(net, "0.0.0.0", [PORT]):
        for name, rules in [("no ruleset", ""), ("allowlist", ruleset)]:
            net.firewall(rules)
            for source in (CLIENT, OTHER_CLIENT):
                out[f"{name}, from {source}"] = connect(net, net.client, SERVER, source=source)[0]
    return out


# --8<-- [end:allowlist]


def main() -> None:
    with two_namespaces() as net:
        print(f"{'bind address':<14} {'from its own namespace':<34} from the other namespace")
        print(f"{'':<14} {'(to 127.0.0.1)':<34} (to 10.0.0.1 over the veth)")
        for host, (inner, outer) in exposure(net).items():
            print(f"{host:<14} {inner:<34} {outer}")

        seen = verdicts(net)
        control = statistics.median(seen[8080][1])
        print(f"\nnftables rules, client timeout {TIMEOUT} s, {REPEATS} connects each:")
        print(f"  {'rule':<36} {'the client saw':<34} {'median':>9}  vs control")
        for port, rule in VERDICTS.items():
            outcomes, times = seen[port]
            median = statistics.median(times)
            print(
                f"  {rule or '(none: the control)':<36} {' / '.join(sorted(outcomes)):<34}"
                f" {median * 1000:6.2f} ms  {median / control:8.1f}x"
            )
        print("\nthe server namespace's ruleset afterwards (the counters count SYNs):")
        print(net.ruleset().rstrip())

        print("\nan allowlist by source address (policy drop):")
        for case, outcome in allowlist(net).items():
            print(f"  {case}: {outcome}")


if __name__ == "__main__":
    main()
