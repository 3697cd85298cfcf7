"""The archive's columns: the full Kafka record, plus typed columns a researcher queries directly.

The raw columns keep every byte (replay reads only these); the typed columns are read from the
value's JSON without validation, so a value that is not an event still archives (its typed
columns are null and its date comes from the record timestamp).
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any, Final

import pyarrow as pa
import pyarrow.json as pjson

from consumers.archive.reader import RawChunk
from schemas.topics import ACCOUNTS, CASH, DEAD_LETTER, ORDERS, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

HEADER_TYPE: Final = pa.list_(pa.struct([("name", pa.string()), ("value", pa.binary())]))
RAW_COLUMNS: Final = (
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("offset", pa.int64()),
    ("timestamp", pa.int64()),  # record timestamp, ms since the epoch
    ("key", pa.binary()),
    ("headers", HEADER_TYPE),
    ("value", pa.binary()),
)
OCCURRED_AT_TYPE: Final = pa.timestamp("us", tz="UTC")
COMMON_TYPED: Final = (
    ("event_type", pa.string()),
    ("event_id", pa.string()),
    ("occurred_at", OCCURRED_AT_TYPE),
    ("correlation_id", pa.string()),
)
_S, _I, _B = pa.string(), pa.int64(), pa.bool_()
# The main fields of the event types each topic carries (schemas/accounts.py, payments.py, cash.py,
# commerce.py); a field an event type lacks is null in its rows.
TOPIC_TYPED: Final[dict[str, tuple[tuple[str, pa.DataType], ...]]] = {
    ACCOUNTS.name: (
        ("account_id", _S),
        ("kind", _S),
        ("holder_token", _S),
        ("provider", _S),
        ("district", _S),
        ("gender", _S),
        ("age_band", _S),
        ("area", _S),
        ("merchant_category", _S),
    ),
    PAYMENT_REQUESTS.name: (
        ("kind", _S),
        ("rail", _S),
        ("payer_account_id", _S),
        ("payee_account_id", _S),
        ("customer_account_id", _S),
        ("agent_account_id", _S),
        ("amount", _I),
        ("pending", _B),
        ("timeout_seconds", _I),
        ("pending_id", _S),
        ("order_id", _S),
    ),
    PAYMENT_OUTCOMES.name: (
        ("request_event_id", _S),
        ("request_type", _S),
        ("payer_account_id", _S),
        ("payee_account_id", _S),
        ("amount", _I),
        ("kind", _S),
        ("rail", _S),
        ("result", _S),
        ("status", _S),
        ("transfer_id", _S),
    ),
    CASH.name: (
        ("payer_token", _S),
        ("merchant_account_id", _S),
        ("merchant_category", _S),
        ("district", _S),
        ("amount", _I),
    ),
    ORDERS.name: (
        ("order_id", _S),
        ("buyer_token", _S),
        ("seller_account_id", _S),
        ("buyer_account_id", _S),
        ("amount", _I),
        ("payment_method", _S),
        ("district", _S),
        ("payment_event_id", _S),
    ),
    DEAD_LETTER.name: (
        ("reason", _S),
        ("source_topic", _S),
        ("source_partition", _I),
        ("source_offset", _I),
    ),
}
# Columns with few distinct values: Parquet dictionary-encodes these only (trying a dictionary on ids,
# tokens and JSON values costs as much as compressing them, for nothing).
DICTIONARY_COLUMNS: Final = frozenset(
    {"topic", "event_type", "kind", "rail", "provider", "district", "gender", "age_band", "area"}
    | {"merchant_category", "payment_method", "result", "status", "request_type", "reason", "source_topic"}
)


def ranged_columns(schema: pa.Schema) -> list[str]:
    """The columns whose min/max statistics Parquet keeps: numbers and times (partition, offset,
    timestamp, occurred_at, amount, ...), which readers such as DuckDB prune row groups on. Ids,
    tokens, labels and JSON values get none: their ranges prune nothing, and computing them was
    about a tenth of the archive's CPU (bench/RESULTS.md, "Archive and replay", run 10)."""
    return [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type)]


OCCURRED_AT_KEY: Final = b'"occurred_at":"'
DATE_LENGTH: Final = 10  # YYYY-MM-DD
READ_OPTIONS: Final = pjson.ReadOptions(block_size=16 * 1024 * 1024)  # fewer, larger blocks: fewer chunks to join
_PYTHON_TYPES: Final = {_S: str, _I: int, _B: bool}


def typed_fields(topic: str) -> tuple[tuple[str, pa.DataType], ...]:
    """The typed columns (after the raw ones) of one catalog topic."""
    return COMMON_TYPED + TOPIC_TYPED.get(topic, ())


def arrow_schema(topic: str) -> pa.Schema:
    """The Parquet schema of one topic's part files."""
    return pa.schema([*RAW_COLUMNS, *typed_fields(topic)])


def parse_value(value: bytes | None) -> dict[str, Any] | None:
    """The value's JSON object, or None when it is not one (poison, tombstones)."""
    if not value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:  # also UnicodeDecodeError
        return None
    return parsed if isinstance(parsed, dict) else None


def event_date(body: dict[str, Any] | None, timestamp_ms: int) -> str:
    """The simulated UTC date (YYYY-MM-DD) a record belongs to: the event's occurred_at, or else
    the record timestamp (dead letters, poison)."""
    occurred = body.get("occurred_at") if body else None
    if isinstance(occurred, str) and len(occurred) >= 10:
        # pydantic writes UTC as 'Z'; anything else is converted so the date is the UTC date.
        if occurred.endswith("Z") or occurred.endswith("+00:00"):
            return occurred[:10]
        try:
            return datetime.fromisoformat(occurred).astimezone(UTC).date().isoformat()
        except ValueError:
            pass
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).date().isoformat()


def record_date(value: bytes | None, timestamp_ms: int) -> str:
    """event_date without parsing the whole value when it is the sandbox's own compact JSON: the
    top-level `"occurred_at":"…Z"` is found by a byte search (the leading quote keeps
    `request_occurred_at` out). Anything else takes the full parse."""
    if value:
        at = value.find(OCCURRED_AT_KEY)
        if at >= 0:
            begin = at + len(OCCURRED_AT_KEY)
            end = value.find(b'"', begin)
            if end - begin >= DATE_LENGTH and value[end - 1 : end] == b"Z":
                return value[begin : begin + DATE_LENGTH].decode("ascii", "replace")
    return event_date(parse_value(value), timestamp_ms)


def typed_value(body: dict[str, Any] | None, name: str, kind: pa.DataType) -> Any:
    """One typed field from the parsed value; None when missing or of the wrong type."""
    if body is None:
        return None
    found = body.get(name)
    if kind == OCCURRED_AT_TYPE:
        return found if isinstance(found, str) else None
    wanted = _PYTHON_TYPES.get(kind, str)
    if wanted is int and isinstance(found, bool):
        return None
    return found if isinstance(found, wanted) else None


def _times(values: pa.Array) -> pa.Array:
    """ISO-8601 strings to UTC timestamps; a string Arrow cannot read becomes null (never an error)."""
    try:
        return values.cast(OCCURRED_AT_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([_time_or_none(v) for v in values.to_pylist()], OCCURRED_AT_TYPE)


def _time_or_none(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _parse_schema(topic: str) -> pa.Schema:
    """The typed columns as Arrow's JSON reader should find them (occurred_at as text, cast after)."""
    return pa.schema([(n, pa.string() if k == OCCURRED_AT_TYPE else k) for n, k in typed_fields(topic)])


def typed_columns(topic: str, values: list[bytes | None], lines: bytes | None = None) -> list[pa.Array]:
    """The typed columns of the given values. Arrow's JSON reader parses them all at once when every
    value is a one-line JSON object of the expected types (the sandbox's own events); otherwise each
    value is parsed in Python and a field of the wrong type is null. `lines` is the values joined by
    newlines, if the caller has it."""
    schema = _parse_schema(topic)
    if values and None not in values:
        lines = b"\n".join(values) if lines is None else lines  # type: ignore[arg-type]
        # As many lines as values (no value holds a newline) and as many rows as lines: row i is value i.
        if lines.count(b"\n") == len(values) - 1:
            options = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
            try:
                # A BufferReader, not a Python file object: Arrow reads it without taking the GIL.
                table = pjson.read_json(pa.BufferReader(lines), parse_options=options, read_options=READ_OPTIONS)
            except pa.ArrowInvalid:
                table = None
            if table is not None and table.num_rows == len(values):
                return [_typed_array(_one_array(table.column(f.name)), f) for f in schema]
    bodies = [parse_value(v) for v in values]
    return [_typed_array(pa.array([typed_value(b, f.name, f.type) for b in bodies], f.type), f) for f in schema]


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (the JSON reader gives one per block), or
    the chunks joined. Not `combine_chunks` always: each such call releases the GIL and, while the
    reading thread runs, waits up to 5 ms to get it back (bench/RESULTS.md, "Run 11")."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _typed_array(array: pa.Array, field: pa.Field) -> pa.Array:
    return _times(array) if field.name == "occurred_at" else array


def build_table(topic: str, chunk: RawChunk) -> pa.Table:
    """One topic's records (partition, offset, timestamp, key, headers, value), with the topic and
    typed columns added, as an Arrow table of the topic's schema."""
    schema = arrow_schema(topic)
    rows = len(chunk)
    values, lines = _binary(chunk.values)
    arrays: list[pa.Array] = [
        pa.array([topic] * rows, pa.string()),
        pa.array(chunk.partitions, pa.int32()),
        pa.array(chunk.offsets, pa.int64()),
        pa.array(chunk.timestamps, pa.int64()),
        pa.array(chunk.keys, pa.binary()),
        _headers(chunk.headers),
        values,
    ]
    arrays += typed_columns(topic, chunk.values, lines)
    return pa.Table.from_arrays(arrays, schema=schema)


def _binary(values: list[bytes | None]) -> tuple[pa.Array | pa.ChunkedArray, bytes | None]:
    """The value column, and the values joined by newlines for the JSON reader (None when a value
    is missing). Arrow converts the list in C++ (chunked past 2 GiB); building the column from a
    joined buffer and Python-computed offsets took 5–9 times as long, all of it holding the GIL
    that the reading thread needs (bench/RESULTS.md, "Run 7")."""
    column = pa.array(values, pa.binary())
    if None in values:
        return column, None
    return column, b"\n".join(values)  # type: ignore[arg-type]


def _headers(values: list[Any]) -> pa.Array:
    """The headers column; when no record has headers (the common case: converting tens of thousands
    of empty Python lists costs more than the rest of the row), a slice of one shared column of
    empty lists, built once per size class (no Arrow call that gives up the GIL per batch)."""
    if any(values):
        return pa.array([[{"name": n, "value": v} for n, v in h] if h else [] for h in values], HEADER_TYPE)
    rows = len(values)
    return _no_headers(max(EMPTY_HEADERS_ROWS, 1 << (rows - 1).bit_length())).slice(0, rows)


EMPTY_HEADERS_ROWS: Final = 16_384  # the shared empty headers column's least size (a consume batch holds 10,000)


@functools.lru_cache(maxsize=8)
def _no_headers(rows: int) -> pa.Array:
    """A headers column of `rows` empty lists (immutable, shared by every batch that fits)."""
    empty = pa.array([], HEADER_TYPE.value_type)
    return pa.ListArray.from_arrays(pa.array([0] * (rows + 1), pa.int32()), empty, type=HEADER_TYPE)
