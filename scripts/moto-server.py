"""Runs moto's server on 127.0.0.1 with DynamoDB requests served one at a time.

`moto_server` serves every request on its own thread, and moto's DynamoDB is not safe for
that: a cancelled TransactWriteItems restores a deep copy of each table it touched, a copy
that can be taken half-way through another request's UpdateItem and that discards writes
committed in the meantime (see tests/integration/emulator_quirks.rs). This wrapper keeps the
threads (SQS long polls must not block anything) and serialises only DynamoDB and DynamoDB
Streams requests.

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
from werkzeug.serving import run_simple


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
