"""What the local brokers' own files say about their KRaft quorum (read while they run)."""

from __future__ import annotations

import json

from infra.local.kafka_config import brokers
from infra.settings import Settings


def active_controller(settings: Settings) -> int | None:
    """The node id of the active KRaft controller of the local cluster, or None while an election runs.

    Read from each broker's `quorum-state` file, which KRaft rewrites on every election: the
    newest epoch wins (a dead broker's file is stale, so older). Kafka's DescribeQuorum API would
    say the same, but neither aiokafka nor the broker jars we fetch include a client for it.
    """
    newest: tuple[int, int] | None = None
    for broker in brokers(settings):
        try:
            state = json.loads((broker.data_dir / "__cluster_metadata-0" / "quorum-state").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            continue
        epoch, leader = int(state.get("leaderEpoch", -1)), int(state.get("leaderId", -1))
        if newest is None or epoch > newest[0]:
            newest = (epoch, leader)
    return newest[1] if newest is not None and newest[1] >= 0 else None
