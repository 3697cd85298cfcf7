"""A real network partition for one local broker: its own network namespace, joined to this one
by a veth pair that `cut` takes down and `heal` brings up again (KPSANDBOX_KAFKA_PARTITIONABLE_BROKER).

    this namespace                                   the broker's namespace (kpsandbox-kafka)
    lo: 127.0.0.1, SHARED_HOST  <- other brokers     lo
    kpsb-kafka-h: VETH_HOST/30  <==== veth ====>     kpsb-kafka-n: PARTITIONED_HOST/30, default route via VETH_HOST

The other brokers and every client stay here and listen on SHARED_HOST (127.0.0.1 is not reachable
from the other namespace: it has a loopback of its own). `cut` takes the broker's end of the link down,
as a pulled cable: our end loses its carrier but keeps its route, so what is sent to the broker is
dropped and connections time out (nothing is refused or reset, and nothing leaks out the default
route); the broker finds its network unreachable. `heal` brings its end up and its route back.
Needs root (CAP_NET_ADMIN) and iproute2's `ip`; one partitionable cluster per machine (the names
and addresses are fixed). Every call is idempotent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Final

from infra.errors import SandboxError
from infra.kafka_ports import PARTITIONED_HOST, SHARED_HOST, VETH_HOST, VETH_PREFIX_LENGTH

NAMESPACE: Final = "kpsandbox-kafka"
HOST_LINK: Final = "kpsb-kafka-h"  # this namespace's end of the veth pair (15 characters at most)
INNER_LINK: Final = "kpsb-kafka-n"
IP_TIMEOUT_S: Final = 10.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs `ip ARGS`; a failure names the command and what `ip` said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False)
    if check and done.returncode != 0:
        raise SandboxError(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}",
            "run as root (network namespaces need CAP_NET_ADMIN), or unset KPSANDBOX_KAFKA_PARTITIONABLE_BROKER",
        )
    return done


def require() -> None:
    """Refuses early, with the fix, where a namespace cannot be made."""
    if shutil.which("ip") is None:
        raise SandboxError(
            "KPSANDBOX_KAFKA_PARTITIONABLE_BROKER needs iproute2's `ip`, which is not installed",
            "install it (`apt-get install iproute2`), or unset KPSANDBOX_KAFKA_PARTITIONABLE_BROKER",
        )
    if os.geteuid() != 0:
        raise SandboxError(
            "KPSANDBOX_KAFKA_PARTITIONABLE_BROKER needs root: network namespaces and veth links need CAP_NET_ADMIN",
            "run `kpsandbox up` as root, or unset KPSANDBOX_KAFKA_PARTITIONABLE_BROKER",
        )


def exists() -> bool:
    return _ip("netns", "list", check=False).stdout.split().count(NAMESPACE) > 0


def ensure() -> None:
    """Makes the namespace, the veth pair, the addresses and the route, whichever are missing."""
    require()
    if f" {SHARED_HOST}/32 " not in _ip("-o", "addr", "show", "dev", "lo").stdout:
        _ip("addr", "add", f"{SHARED_HOST}/32", "dev", "lo")
    if not exists():
        _ip("netns", "add", NAMESPACE)
    if _ip("link", "show", HOST_LINK, check=False).returncode != 0:
        _ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", INNER_LINK, "netns", NAMESPACE)
        _ip("addr", "add", f"{VETH_HOST}/{VETH_PREFIX_LENGTH}", "dev", HOST_LINK)
        _ip("-n", NAMESPACE, "addr", "add", f"{PARTITIONED_HOST}/{VETH_PREFIX_LENGTH}", "dev", INNER_LINK)
        _ip("link", "set", HOST_LINK, "up")
        _ip("-n", NAMESPACE, "link", "set", "lo", "up")
    heal()


def command_prefix() -> list[str]:
    """What runs a command inside the namespace (`ip netns exec` execs it: the PID is the command's)."""
    return ["ip", "netns", "exec", NAMESPACE]


def cut() -> None:
    """Takes the broker's end of the link down: it can reach nobody, and nobody can reach it."""
    _ip("-n", NAMESPACE, "link", "set", INNER_LINK, "down")


def heal() -> None:
    """Brings the broker's end up again, with its default route (removed with the link)."""
    _ip("-n", NAMESPACE, "link", "set", INNER_LINK, "up")
    if "default" not in _ip("-n", NAMESPACE, "route", "show").stdout:
        _ip("-n", NAMESPACE, "route", "add", "default", "via", VETH_HOST)


def is_cut() -> bool:
    """True when the link exists and the broker's end of it is down."""
    shown = _ip("-n", NAMESPACE, "-o", "link", "show", INNER_LINK, check=False)
    flags = shown.stdout.partition("<")[2].partition(">")[0].split(",")
    return shown.returncode == 0 and "UP" not in flags


def remove() -> None:
    """Removes the namespace (its end of the veth pair goes with it, and so does ours) and the address."""
    if exists():
        _ip("netns", "delete", NAMESPACE)
    _ip("link", "delete", HOST_LINK, check=False)  # gone with its peer already, unless the namespace was not
    _ip("addr", "delete", f"{SHARED_HOST}/32", "dev", "lo", check=False)
