"""Make moto's in-process DynamoDB behave as DynamoDB does for a job that calls it from several threads.

Two differences from the real service matter to the metering job's workers:
- moto is not thread-safe: a request that changes a table while another reads it fails with "dictionary
  changed size during iteration". DynamoDB handles each request atomically; here every mocked request is
  served one at a time (a lock around moto's request dispatch).
- moto rolls a TransactWriteItems back by deep-copying the whole table once for each item of the
  transaction, which costs 25 x the table's size per batch. Here only the items the transaction touches are
  copied, and restored when it is cancelled: the same result, at the cost DynamoDB has.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

_LOCK = threading.RLock()
_applied = False


class _NoTableCopy:
    """`copy` as moto's DynamoDB backend sees it: a Table is not copied (its touched items are, below)."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def apply() -> None:
    global _applied
    if _applied:
        return
    _applied = True
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType

    stubbed = BotocoreStubber.__call__

    def one_at_a_time(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return stubbed(self, *args, **kwargs)

    BotocoreStubber.__call__ = one_at_a_time  # type: ignore[method-assign]
    models.copy = _NoTableCopy  # type: ignore[attr-defined]
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with _LOCK:
            backups: list[tuple[Any, Any, Any, Any]] = []
            for entry in transact_items:
                (operation,) = entry.values()
                table = self.tables.get(operation.get("TableName"))
                key = operation.get("Key") or operation.get("Item")
                if table is None or not key or table.hash_key_attr not in key:
                    continue
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                item = table.get_item(hash_value, range_value)
                backups.append((table, hash_value, range_value, copy.deepcopy(item)))
            try:
                transact(self, transact_items)
            except Exception:
                for table, hash_value, range_value, item in backups:
                    if table.get_item(hash_value, range_value) is not None:
                        table.delete_item(hash_value, range_value)
                    if item is not None:
                        if range_value is not None:
                            table.items[hash_value][range_value] = item
                        else:
                            table.items[hash_value] = item
                raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
