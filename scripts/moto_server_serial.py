"""moto's server, one request at a time (scripts/aws-standin.sh starts it).

moto's backends are not safe under concurrent requests, and its server is threaded:
Kinesis `put_record` takes the next sequence number from the shard's last key without
a lock ("this function is not safe for concurrency", moto/kinesis/models.py), so two
concurrent PutRecords to one shard can get the same number and one acknowledged record
silently replaces the other; concurrent GetRecords then fail with 500s. Measured: a
real Prometheus remote-writing on two queue shards lost records carat had acknowledged.
AWS serialises per shard; this wrapper serialises the whole stand-in, which costs
nothing that matters for a local system and makes it lose nothing.

Usage: python moto_server_serial.py [moto_server arguments, e.g. -H 127.0.0.1 -p 4566]
"""

import sys
import threading

from moto import server

_run_simple = server.run_simple
_lock = threading.Lock()


def _serialised(app):
    def handle(environ, start_response):
        with _lock:
            # Produce the whole response under the lock: moto builds it eagerly anyway.
            return list(app(environ, start_response))

    return handle


def _run_simple_serialised(host, port, app, **kwargs):
    return _run_simple(host, port, _serialised(app), **kwargs)


server.run_simple = _run_simple_serialised

if __name__ == "__main__":
    server.main(sys.argv[1:])
