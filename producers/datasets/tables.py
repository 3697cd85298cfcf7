"""The dataset formats as Arrow tables: column names, types and how each is made from the rows.

Every table is built from `labelled.py`'s rows in batches, so a large run never sits in memory.
Amounts are integer paisa (`amount_paisa`) and, where a format wants currency units, an exact
decimal of rupees with two places (never a float). docs/datasets.md documents every column.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

import pyarrow as pa

from producers.datasets.labelled import AccountRow, RequestRow

HOUR_S: Final = 3_600
RUPEES: Final = pa.decimal128(18, 2)
UTC_SECONDS: Final = pa.timestamp("s", tz="UTC")
MONEY_EVENTS: Final = frozenset({"payment.requested", "cash.in", "cash.out"})  # one transfer each
# PaySim's transaction types for our payment kinds (PaySim's DEBIT has no counterpart here).
PAYSIM_TYPES: Final = {
    "p2m_static_qr": "PAYMENT",
    "p2m_dynamic_qr": "PAYMENT",
    "bill_payment": "PAYMENT",
    "ecommerce": "PAYMENT",
    "request_to_pay": "PAYMENT",
    "p2p": "TRANSFER",
    "wage": "TRANSFER",
    "g2p": "TRANSFER",
    "cash.in": "CASH_IN",
    "cash.out": "CASH_OUT",
}
AMLSIM_NO_ALERT: Final = -1  # AMLSim's alert_id of a transaction outside any alert

Requests = list[RequestRow]


def rupees(paisa: int | None) -> Decimal | None:
    """Paisa as an exact decimal of rupees with two places (12345 → 123.45)."""
    return None if paisa is None else Decimal(paisa).scaleb(-2)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


# -- parquet: requests.parquet and accounts.parquet --------------------------------------------------

REQUESTS_SCHEMA: Final = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("correlation_id", pa.string()),
        ("occurred_at", UTC_SECONDS),
        ("hour", pa.int32()),
        ("event_type", pa.string()),
        ("kind", pa.string()),
        ("rail", pa.string()),
        ("from_account_id", pa.string()),
        ("to_account_id", pa.string()),
        ("amount_paisa", pa.int64()),
        ("pending", pa.bool_()),
        ("timeout_seconds", pa.int32()),
        ("order_id", pa.string()),
        ("pending_id", pa.string()),
        ("label", pa.string()),
        ("from_balance_before_paisa", pa.int64()),
        ("from_balance_after_paisa", pa.int64()),
        ("to_balance_before_paisa", pa.int64()),
        ("to_balance_after_paisa", pa.int64()),
    ]
)

ACCOUNTS_SCHEMA: Final = pa.schema(
    [
        ("account_id", pa.string()),
        ("kind", pa.string()),
        ("holder_token", pa.string()),
        ("provider", pa.string()),
        ("district", pa.string()),
        ("gender", pa.string()),
        ("age_band", pa.string()),
        ("area", pa.string()),
        ("merchant_category", pa.string()),
        ("accepted_instruments", pa.list_(pa.string())),
        ("opened_at", UTC_SECONDS),
    ]
)


def requests_batch(rows: Requests, start_ts: int) -> pa.RecordBatch:
    """The tidy requests table: every request of the payment-requests topic, typed."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(RequestRow._fields)
    values = dict(zip(RequestRow._fields, columns, strict=True))
    hours = [(ts - start_ts) // HOUR_S for ts in values["ts"]]
    arrays = [
        values["seq"],
        values["event_id"],
        values["correlation_id"],
        values["ts"],
        hours,
        values["event_type"],
        values["kind"],
        values["rail"],
        values["from_account_id"],
        values["to_account_id"],
        values["amount_paisa"],
        values["pending"],
        values["timeout_seconds"],
        values["order_id"],
        values["pending_id"],
        values["label"],
        values["from_balance_before"],
        values["from_balance_after"],
        values["to_balance_before"],
        values["to_balance_after"],
    ]
    return _batch(REQUESTS_SCHEMA, arrays)


def accounts_batch(rows: list[AccountRow]) -> pa.RecordBatch:
    """Every account opened during the run, without IBANs or Raast aliases."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(AccountRow._fields)
    return _batch(ACCOUNTS_SCHEMA, [list(column) for column in columns])


# -- paysim: paysim.csv ------------------------------------------------------------------------------

PAYSIM_SCHEMA: Final = pa.schema(
    [
        ("step", pa.int32()),
        ("type", pa.string()),
        ("amount", RUPEES),
        ("nameOrig", pa.string()),
        ("oldbalanceOrg", RUPEES),
        ("newbalanceOrig", RUPEES),
        ("nameDest", pa.string()),
        ("oldbalanceDest", RUPEES),
        ("newbalanceDest", RUPEES),
        ("isFraud", pa.int8()),
        ("isFlaggedFraud", pa.int8()),
        ("amount_paisa", pa.int64()),
        ("label", pa.string()),
        ("event_id", pa.string()),
    ]
)


def paysim_batch(rows: Requests, start_ts: int) -> pa.RecordBatch:
    """PaySim's columns, one row per transfer. As in PaySim, the customer is `nameOrig` for
    CASH_IN and CASH_OUT (the agent is `nameDest`), and `step` counts hours from 1."""
    arrays: list[list] = [[] for _ in PAYSIM_SCHEMA]
    for row in rows:
        if row.event_type not in MONEY_EVENTS:
            continue
        ptype = PAYSIM_TYPES[row.kind or row.event_type]
        if ptype == "CASH_IN":  # money moves agent → customer; PaySim names the customer first
            orig, dest = (
                (row.to_account_id, row.to_balance_before, row.to_balance_after),
                (
                    row.from_account_id,
                    row.from_balance_before,
                    row.from_balance_after,
                ),
            )
        else:
            orig = (row.from_account_id, row.from_balance_before, row.from_balance_after)
            dest = (row.to_account_id, row.to_balance_before, row.to_balance_after)
        values = (
            (row.ts - start_ts) // HOUR_S + 1,
            ptype,
            rupees(row.amount_paisa),
            orig[0],
            rupees(orig[1]),
            rupees(orig[2]),
            dest[0],
            rupees(dest[1]),
            rupees(dest[2]),
            0,
            0,
            row.amount_paisa,
            row.label,
            row.event_id,
        )
        for column, value in zip(arrays, values, strict=True):
            column.append(value)
    return _batch(PAYSIM_SCHEMA, arrays)


# -- amlsim: accounts.csv and transactions.csv ---------------------------------------------------------

AMLSIM_TRANSACTIONS_SCHEMA: Final = pa.schema(
    [
        ("tran_id", pa.int64()),
        ("orig_acct", pa.string()),
        ("bene_acct", pa.string()),
        ("tx_type", pa.string()),
        ("base_amt", RUPEES),
        ("tran_timestamp", pa.string()),
        ("is_sar", pa.bool_()),
        ("alert_id", pa.int64()),
        ("amount_paisa", pa.int64()),
        ("label", pa.string()),
        ("event_id", pa.string()),
    ]
)

AMLSIM_ACCOUNTS_SCHEMA: Final = pa.schema(
    [
        ("acct_id", pa.string()),
        ("dsply_nm", pa.string()),
        ("type", pa.string()),
        ("acct_stat", pa.string()),
        ("acct_rptng_crncy", pa.string()),
        ("branch_id", pa.string()),
        ("open_dt", pa.string()),
        ("close_dt", pa.string()),
        ("initial_deposit", RUPEES),
        ("bank_id", pa.string()),
        ("prior_sar_count", pa.bool_()),
        ("gender", pa.string()),
        ("age_band", pa.string()),
        ("area", pa.string()),
        ("merchant_category", pa.string()),
    ]
)


def amlsim_transactions_batch(rows: Requests) -> pa.RecordBatch:
    """AMLSim's transactions, one per transfer, `orig_acct` paying `bene_acct`. `tran_id` is the
    request's position in the run (`seq`), so ids are unique and ordered but not contiguous."""
    arrays: list[list] = [[] for _ in AMLSIM_TRANSACTIONS_SCHEMA]
    for row in rows:
        if row.event_type not in MONEY_EVENTS:
            continue
        values = (
            row.seq,
            row.from_account_id,
            row.to_account_id,
            PAYSIM_TYPES[row.kind or row.event_type],
            rupees(row.amount_paisa),
            _iso(row.ts),
            False,
            AMLSIM_NO_ALERT,
            row.amount_paisa,
            row.label,
            row.event_id,
        )
        for column, value in zip(arrays, values, strict=True):
            column.append(value)
    return _batch(AMLSIM_TRANSACTIONS_SCHEMA, arrays)


def amlsim_accounts_batch(rows: list[AccountRow]) -> pa.RecordBatch:
    """AMLSim's account list: every account opened in the run, active, in PKR, opened empty."""
    values = [
        (
            r.account_id,
            r.holder_token,
            r.kind,
            "A",
            "PKR",
            r.district,
            _date(r.opened_ts),
            None,
            Decimal("0.00"),
            r.provider,
            False,
            r.gender,
            r.age_band,
            r.area,
            r.merchant_category,
        )
        for r in rows
    ]
    columns = list(zip(*values, strict=True)) if values else [()] * len(AMLSIM_ACCOUNTS_SCHEMA)
    return _batch(AMLSIM_ACCOUNTS_SCHEMA, [list(column) for column in columns])


def _batch(schema: pa.Schema, arrays: list) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [pa.array(list(values), type=field.type) for values, field in zip(arrays, schema, strict=True)],
        schema=schema,
    )
