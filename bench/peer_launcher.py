"""Starts the original Flawless server (run by the peer's own virtualenv python).

Usage: python peer_launcher.py CONFIG_PATH

Before handing over to the peer's own ``serve``, it makes every listening socket bind to
127.0.0.1 (the peer binds all interfaces) and decodes git's output to text, because the
peer's blame splits bytes with a str separator under Python 3 and would otherwise never
finish a blame. Nothing else of the peer is changed.
"""

import subprocess
import sys

from thrift.transport import TSocket

from flawless.lib.version_control import repo as peer_repo
from flawless.server import server as peer_server

_server_socket_init = TSocket.TServerSocket.__init__


def _loopback_server_socket(self, host=None, port=9090, *args, **kwargs):
    _server_socket_init(self, "127.0.0.1", port, *args, **kwargs)


_http_init = peer_server.SimpleThreadedHTTPServer.__init__


def _loopback_http(self, address, handler, *args, **kwargs):
    _http_init(self, ("127.0.0.1", address[1]), handler, *args, **kwargs)


def _raw_run_as_text(self, args, log_output=False):
    finished = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return finished.stdout.decode("utf-8", "replace")


TSocket.TServerSocket.__init__ = _loopback_server_socket
peer_server.SimpleThreadedHTTPServer.__init__ = _loopback_http
peer_repo.GitRepository._raw_run = _raw_run_as_text

if __name__ == "__main__":
    peer_server.serve(sys.argv[1])
