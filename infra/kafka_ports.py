"""Where the brokers of a local Kafka cluster listen: pure port arithmetic, checked by the settings.

Local broker k (1..N) listens on KPSANDBOX_KAFKA_PORT + 2(k-1) and its controller on
KPSANDBOX_KAFKA_CONTROLLER_PORT + 2(k-1): each broker takes the next pair, so the default ports
(19092/19093) never collide, and one broker keeps exactly the ports it always had.
"""

from __future__ import annotations

from typing import Final

KAFKA_BROKERS_MAX: Final = 5  # a KRaft quorum of 5 voters survives 2 failures; more buys nothing locally
KAFKA_PORT_STEP: Final = 2
KAFKA_REPLICATION_FACTOR_DEFAULT_MAX: Final = 3
# A partitionable cluster (KPSANDBOX_KAFKA_PARTITIONABLE_BROKER) cannot use 127.0.0.1: a broker in
# another network namespace has a loopback of its own. Addresses from TEST-NET-2 (RFC 5737, never
# routed): the other brokers listen on SHARED_HOST, added to this namespace's loopback; the cut-off
# broker on PARTITIONED_HOST, its end of a veth pair whose other end is VETH_HOST (infra/local/netns.py).
SHARED_HOST: Final = "198.51.100.1"
VETH_HOST: Final = "198.51.100.5"
PARTITIONED_HOST: Final = "198.51.100.6"
VETH_PREFIX_LENGTH: Final = 30


def broker_ports(base: int, brokers: int) -> tuple[int, ...]:
    """The port of each of `brokers` local brokers counted from `base`, broker 1 first."""
    return tuple(base + KAFKA_PORT_STEP * index for index in range(brokers))


def kafka_port_clash(client_port: int, controller_port: int, brokers: int) -> str | None:
    """Why the ports of a local cluster of `brokers` cannot work (a port out of range, or one port
    wanted twice), naming the broker and the setting to change; None when they can."""
    wanted: dict[int, str] = {}
    for index in range(brokers):
        for base, setting, role in (
            (client_port, "KPSANDBOX_KAFKA_PORT", "client"),
            (controller_port, "KPSANDBOX_KAFKA_CONTROLLER_PORT", "controller"),
        ):
            port = base + KAFKA_PORT_STEP * index
            claim = f"broker {index + 1}'s {role} port ({setting} + {KAFKA_PORT_STEP * index})"
            if port > 65535:
                return f"{claim} would be {port}, above 65535: lower {setting}"
            if port in wanted:
                return (
                    f"port {port} is both {wanted[port]} and {claim} with KPSANDBOX_KAFKA_BROKERS={brokers}: "
                    f"broker k uses KPSANDBOX_KAFKA_PORT + {KAFKA_PORT_STEP}(k-1) and KPSANDBOX_KAFKA_CONTROLLER_PORT "
                    f"+ {KAFKA_PORT_STEP}(k-1), so make the two settings differ by an odd number "
                    "(e.g. 19092 and 19093)"
                )
            wanted[port] = claim
    return None


def broker_hosts(brokers: int, partitionable: int | None) -> tuple[str, ...]:
    """The address each of `brokers` local brokers listens on, broker 1 first: 127.0.0.1, or with a
    partitionable broker that broker's address inside its namespace and the shared one for the others."""
    if partitionable is None:
        return ("127.0.0.1",) * brokers
    return tuple(PARTITIONED_HOST if node_id == partitionable else SHARED_HOST for node_id in range(1, brokers + 1))


def partitionable_problem(brokers: int, partitionable: int, security: str) -> str | None:
    """Why broker `partitionable` of a local cluster cannot be the one cut off, naming the setting to
    change; None when it can."""
    if brokers < 2 or partitionable > brokers:
        return (
            f"KPSANDBOX_KAFKA_PARTITIONABLE_BROKER={partitionable} names no broker a partition can cut off from the "
            f"others with KPSANDBOX_KAFKA_BROKERS={brokers}: set KPSANDBOX_KAFKA_BROKERS=3 and a broker from 1 to 3"
        )
    if security != "plaintext":
        return (
            "KPSANDBOX_KAFKA_PARTITIONABLE_BROKER needs KPSANDBOX_KAFKA_SECURITY=plaintext (the local certificate "
            "names 127.0.0.1 only, and a partitionable cluster listens on 198.51.100.x)"
        )
    return None
