"""nftables in network namespaces: the firewall page (docs/security/firewalls.md) creates
two namespaces joined by a veth pair and writes rules with `nft` inside them, never on the
host. That needs Linux, root (CAP_SYS_ADMIN and CAP_NET_ADMIN), `nft` and `ip`: this
module checks all of it by creating a throwaway namespace (and writing a sysctl in it, as
the snippet does), and provides nft's path."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from services import SBIN, Install, Missing, Started, find_binary

NAME = "nftables in a network namespace"
BINARY_ONLY = True  # the snippet runs it, in namespaces of its own
PROVIDES = ("NFT_BIN",)
INSTALL = Install(apt="nftables iproute2", brew="(Linux only)")


def nft_binary() -> Path:
    if sys.platform != "linux":
        raise Missing("network namespaces and nftables are Linux's: the firewall page needs Linux")
    nft = find_binary("nft", INSTALL, label="nftables")
    find_binary("ip", INSTALL, label="iproute2")
    unshare = shutil.which("unshare", path=f"{SBIN}:/usr/bin:/bin")
    if os.geteuid() != 0 or not unshare:
        raise Missing(
            "creating a network namespace needs root: run the firewall page's tests and"
            " snippet as root (sudo), e.g. sudo make run S=security/firewall_netns"
        )
    # Can we really create one (a container may lack the capability), and write its
    # sysctls? The snippet sets net.ipv4.icmp_ratelimit in its server's namespace, and
    # Docker mounts /proc/sys read-only unless --security-opt systempaths=unconfined.
    # The probe does both in a throwaway namespace: the host's own value is untouched.
    script = '"$1" list ruleset >/dev/null && echo 0 > /proc/sys/net/ipv4/icmp_ratelimit'
    probe = subprocess.run(
        [unshare, "--net", "sh", "-c", script, "probe", str(nft)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if probe.returncode:
        raise Missing(
            "root, but creating a network namespace with nftables, or writing its"
            f" net.ipv4.icmp_ratelimit, failed ({probe.stderr.strip()[:200]}); a container"
            " needs --cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt"
            " systempaths=unconfined (and apparmor=unconfined where AppArmor confines it)"
        )
    return nft


@contextlib.contextmanager
def start() -> Iterator[Started]:
    binary = nft_binary()
    yield Started({"NFT_BIN": str(binary)}, f"{NAME} ({binary}), made by the snippet as root")


binary = nft_binary  # every service module has one: found, or Missing with the reason
