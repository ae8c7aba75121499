"""Runs moto's server on 127.0.0.1 with two of its DynamoDB bugs worked around.

1. `moto_server` serves every request on its own thread, and moto's DynamoDB is not safe for
   that: a cancelled TransactWriteItems restores a deep copy of each table it touched, a copy
   that can be taken half-way through another request's UpdateItem and that discards writes
   committed in the meantime. This wrapper keeps the threads (SQS long polls must not block
   anything) and serialises only DynamoDB and DynamoDB Streams requests.
2. That rollback swaps in the copy's stream shard, so the shard that readers hold iterators
   on keeps the stream records of the cancelled transaction's items written before the
   failing one: records of writes that never happened, whose sequence numbers the next real
   writes reuse. Readers see phantom events and skip real ones. The rollback here keeps the
   original shard and cuts it back to its length before the transaction.

tests/integration/emulator_quirks.rs shows the second on every emulator.

usage: python moto-server.py PORT
"""

import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.dynamodb.models import DynamoDBBackend
from werkzeug.serving import run_simple


def keep_stream_shards_on_rollback(transact_write_items):
    """Wraps DynamoDBBackend.transact_write_items: a cancelled transaction leaves each
    table's stream shard as it was before, the same object, so iterators stay valid."""

    def wrapped(self, transact_items):
        names = {next(iter(item.values())).get("TableName") for item in transact_items}
        shards = {
            name: (self.tables[name].stream_shard, len(self.tables[name].stream_shard.items))
            for name in names
            if name in self.tables and self.tables[name].stream_shard is not None
        }
        try:
            return transact_write_items(self, transact_items)
        except Exception:
            for name, (shard, length) in shards.items():
                restored = self.tables[name]
                del shard.items[length:]
                shard.table = restored
                restored.stream_shard = shard
            raise

    return wrapped


DynamoDBBackend.transact_write_items = keep_stream_shards_on_rollback(
    DynamoDBBackend.transact_write_items
)


class SerialDynamoDB:
    """WSGI middleware: one DynamoDB (or Streams) request at a time, the rest concurrently."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with self.lock:
                # Produce the whole body while holding the lock.
                return [b"".join(self.app(environ, start_response))]
        return self.app(environ, start_response)


def main() -> None:
    port = int(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
