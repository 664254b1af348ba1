"""Runs moto's server on loopback with one request handled at a time.

DynamoDB runs each TransactWriteItems call serializably: its conditions and writes take effect
together or not at all. moto's own server handles requests on parallel threads without that
isolation, so two racing transactions can both pass their conditions, and a losing one can
leave some of its writes behind. Holding one lock around moto's WSGI application restores the
all-or-nothing behaviour the wxkf-aws adapter relies on; connections are still accepted
concurrently, so a client holding a keep-alive connection never blocks another.

Usage: python moto_server.py PORT
"""

import sys
import threading

from werkzeug.serving import run_simple

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app


def main() -> None:
    port = int(sys.argv[1])
    moto_app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialized_app(environ, start_response):
        with lock:
            # The body is read inside the lock, as moto builds it while handling the request.
            return list(moto_app(environ, start_response))

    run_simple(
        "127.0.0.1",
        port,
        serialized_app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
