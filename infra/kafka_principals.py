"""Who may do what on a secured broker: the least-privilege ACLs of each sandbox principal and of
each tenant, derived from the topic catalogue and the deployment's topic prefix.

Each principal gets what its code really does (grep the factory calls: `kafka_clients.producer(
settings, "<principal>", …)`), nothing more. Kafka implies Describe from Read and Write, so topics
a process only reads or writes need no separate Describe. Two grants are not needed on Kafka 4:

- IdempotentWrite on the cluster: since Kafka 3.0 (KIP-679) an idempotent producer needs only Write
  on some topic, and every producer here has that;
- TransactionalId: only the tenant gateway uses a transaction (its own id, granted below).

The `admin` principal is a super user (infra/local/kafka.py: super.users) and has no ACLs. The
`webhooks` dispatcher reads its work from PostgreSQL, not Kafka, so it has none either.

Consumer groups are granted by prefix (`kp-ledger` also covers `kp-ledger-bench`), since every
consumer takes its group from a setting with the name below as default.

`python -m infra.kafka_principals` rewrites the table of these grants in docs/security.md (between
its `acl-table` markers); `--check` changes nothing and exits 1 when it is stale (a unit test runs
the same check).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Final

from infra.kafka_acl import AclBinding, Operation, PatternType, create_acls, user_principal
from infra.kafka_clients import PRINCIPALS, Principal, username
from infra.settings import Settings
from schemas.topics import (
    ACCOUNTS,
    CASH,
    CATALOG,
    DEAD_LETTER,
    ORDERS,
    PAYMENT_OUTCOMES,
    PAYMENT_REQUESTS,
    TENANT_OUTCOMES_FAMILY,
    TENANT_REQUESTS_FAMILY,
    tenant_outcomes_name,
    tenant_requests_name,
)

# The consumer groups' default names (consumers/*/consumer.py GROUP_DEFAULT), granted as prefixes.
LEDGER_GROUP: Final = "kp-ledger"
METRICS_GROUP: Final = "kp-metrics"
VIEWS_GROUP: Final = "kp-api-views"
ARCHIVE_GROUP: Final = "kpsandbox-archive"  # librdkafka needs a group.id; the archive never joins it
GATEWAY_GROUP: Final = "kp-gateway"  # consumers/gateway/bridge.py GROUP, also its transactional id
INTERNAL_PREFIX: Final = "__"  # Kafka's internal topics
ALL: Final = "*"  # a literal "*" resource name matches every resource of its type
DOC: Final = Path(__file__).resolve().parent.parent / "docs" / "security.md"
REFRESH_COMMAND: Final = "python -m infra.kafka_principals"
ACL_TABLE: Final = re.compile(r"(<!-- acl-table -->\n)(.*?)(<!-- /acl-table -->)", re.DOTALL)
TENANT_PLACEHOLDER: Final = "<tenant id>"  # stands for a tenant's id (ten_…) in the docs' table


def _topic(principal: Principal, name: str, *operations: Operation, prefixed: bool = False) -> list[AclBinding]:
    pattern: PatternType = "prefixed" if prefixed else "literal"
    who = user_principal(username(principal))
    return [AclBinding("topic", name, pattern, who, operation) for operation in operations]


def _group(principal: Principal, name: str, *operations: Operation) -> list[AclBinding]:
    who = user_principal(username(principal))
    return [AclBinding("group", name, "prefixed", who, operation) for operation in operations]


def service_acls(settings: Settings) -> dict[Principal, list[AclBinding]]:
    """Every sandbox principal's ACLs under the settings' topic prefix."""
    topic = settings.topic
    tenant_requests = settings.topic_prefix + TENANT_REQUESTS_FAMILY
    tenant_outcomes = settings.topic_prefix + TENANT_OUTCOMES_FAMILY
    table: dict[Principal, list[AclBinding]] = {principal: [] for principal in PRINCIPALS}
    # The ledger settles the shared requests topic (tenants' requests arrive there through the
    # gateway), reads accounts, and writes outcomes (shared, and copies per tenant) and dead letters.
    table["ledger"] = [
        *_topic("ledger", topic(PAYMENT_REQUESTS), "read"),
        *_topic("ledger", topic(ACCOUNTS), "read"),
        *_topic("ledger", topic(PAYMENT_OUTCOMES), "write"),
        *_topic("ledger", topic(DEAD_LETTER), "write"),
        *_topic("ledger", tenant_outcomes, "write", prefixed=True),
        *_group("ledger", LEDGER_GROUP, "read"),
    ]
    # The tenant gateway reads every tenant's requests topic and copies them, in transactions
    # (its transactional id and group carry the deployment's prefix), onto the shared one.
    gateway_id = settings.topic_prefix + GATEWAY_GROUP
    gateway = user_principal(username("gateway"))
    table["gateway"] = [
        *_topic("gateway", tenant_requests, "read", prefixed=True),
        *_topic("gateway", topic(PAYMENT_REQUESTS), "write"),
        AclBinding("group", gateway_id, "literal", gateway, "read"),
        *(AclBinding("transactional_id", gateway_id, "literal", gateway, op) for op in ("write", "describe")),
    ]
    # The metrics consumer reads the whole catalogue and watches the ledger's lag (OffsetFetch
    # needs Describe on the watched group).
    table["metrics"] = [
        *(binding for spec in CATALOG for binding in _topic("metrics", topic(spec), "read")),
        *_group("metrics", METRICS_GROUP, "read"),
        *_group("metrics", LEDGER_GROUP, "describe"),
    ]
    # The API's views consumer follows outcomes into the API's database.
    table["views"] = [*_topic("views", topic(PAYMENT_OUTCOMES), "read"), *_group("views", VIEWS_GROUP, "read")]
    # The API publishes opened accounts and payment commands (payments, top-ups, refunds).
    table["api"] = [*_topic("api", topic(ACCOUNTS), "write"), *_topic("api", topic(PAYMENT_REQUESTS), "write")]
    # The simulation's economy writes the streams it simulates.
    table["economy"] = [
        binding
        for spec in (ACCOUNTS, PAYMENT_REQUESTS, CASH, ORDERS)
        for binding in _topic("economy", topic(spec), "write")
    ]
    table["researcher"] = _researcher(settings)
    return table


def _researcher(settings: Settings) -> list[AclBinding]:
    """Replay and the archive read the catalogue topics of any prefix and write (and create) a new
    prefix's. Kafka cannot match a suffix, so the grant is every topic — minus, by DENY (which wins
    over ALLOW), writing this deployment's live topics and touching its tenants' topics at all."""
    who = user_principal(username("researcher"))
    grants = _topic("researcher", ALL, "read", "write", "create")
    live = [AclBinding("topic", settings.topic(spec), "literal", who, "write", allow=False) for spec in CATALOG]
    tenants = [
        AclBinding("topic", settings.topic_prefix + family, "prefixed", who, operation, allow=False)
        for family in (TENANT_REQUESTS_FAMILY, TENANT_OUTCOMES_FAMILY)
        for operation in ("read", "write")
    ]
    internal = [  # Kafka's own topics (__consumer_offsets, __transaction_state) are nobody's data
        AclBinding("topic", INTERNAL_PREFIX, "prefixed", who, operation, allow=False)
        for operation in ("read", "write", "create")
    ]
    return [*grants, *live, *tenants, *internal, *_group("researcher", ARCHIVE_GROUP, "read")]


def tenant_username(tenant_id: str) -> str:
    """A tenant's SCRAM user name: its tenant id, the one identity the API and Kafka share."""
    return tenant_id


def tenant_acls(settings: Settings, tenant_id: str) -> list[AclBinding]:
    """A tenant may write its own requests topic and read its own outcomes topic, in its own
    consumer groups (named by its tenant id), and nothing else."""
    who = user_principal(tenant_username(tenant_id))
    requests = settings.topic_prefix + tenant_requests_name(tenant_id)
    outcomes = settings.topic_prefix + tenant_outcomes_name(tenant_id)
    return [
        *(AclBinding("topic", requests, "prefixed", who, operation) for operation in ("write", "describe")),
        *(AclBinding("topic", outcomes, "prefixed", who, operation) for operation in ("read", "describe")),
        AclBinding("group", tenant_id, "prefixed", who, "read"),
    ]


async def apply_service_acls(settings: Settings) -> int:
    """Grants every sandbox principal its ACLs (idempotent: existing ones stay); returns how many
    bindings the table has. Additive only: several prefixes may share one broker (tests do), so
    another prefix's grants are never removed here."""
    bindings = [binding for grants in service_acls(settings).values() for binding in grants]
    await create_acls(settings, bindings)
    return len(bindings)


# --- The table in docs/security.md -------------------------------------------------------------


def markdown_table() -> str:
    """Every principal's grants as a Markdown table, for the default (empty) topic prefix.

    One row per resource a principal may (or, by DENY, may not) touch, its operations joined.
    Built from `service_acls` and `tenant_acls`, so the docs say what `kpsandbox up` grants.
    """
    # Settings with no environment read: the table must not change with the reader's KPSANDBOX_*.
    settings = Settings.model_construct(topic_prefix="")
    grants: list[tuple[str, list[AclBinding]]] = [
        (f"`{username(principal)}`", bindings) for principal, bindings in service_acls(settings).items()
    ]
    grants.append((f"`{TENANT_PLACEHOLDER}` (every tenant)", tenant_acls(settings, TENANT_PLACEHOLDER)))
    lines = ["| principal | permission | operations | resource | name | match |", "|---|---|---|---|---|---|"]
    for who, bindings in grants:
        if not bindings:
            admin = who == f"`{username('admin')}`"
            note = "super user: may do everything, needs no ACL" if admin else "none: may log in, may do nothing"
            lines.append(f"| {who} | {note} | | | | |")
            continue
        rows: dict[tuple[bool, str, str, str], list[str]] = {}
        for binding in bindings:
            key = (binding.allow, binding.resource_type, binding.name, binding.pattern)
            rows.setdefault(key, []).append(binding.operation)
        for (allow, resource_type, name, pattern), operations in rows.items():
            permission = "allow" if allow else "**deny**"
            match = "every name" if name == ALL else pattern
            lines.append(f"| {who} | {permission} | {', '.join(operations)} | {resource_type} | `{name}` | {match} |")
    return "\n".join(lines)


def refreshed(text: str) -> str:
    """`text` with the table between its `acl-table` markers regenerated; ValueError without markers."""
    if ACL_TABLE.search(text) is None:
        raise ValueError("no <!-- acl-table --> … <!-- /acl-table --> markers to put the table between")
    return ACL_TABLE.sub(lambda match: f"{match.group(1)}{markdown_table()}\n{match.group(3)}", text)


def main(argv: list[str]) -> int:
    """Rewrites docs/security.md's table (with --check: only says whether it is stale, exit 1 if so)."""
    text = DOC.read_text()
    current = refreshed(text) == text
    if "--check" in argv:
        if not current:
            print(f"{DOC.name}: its ACL table is stale; run `{REFRESH_COMMAND}`")
        return 0 if current else 1
    if not current:
        DOC.write_text(refreshed(text))
        print(f"rewrote the ACL table of docs/{DOC.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
