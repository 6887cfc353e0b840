"""The entry point of a worker's submissions writer process (`service.writer`):
`python -m api.writer FD`, started by the worker itself (`api.app`), never by hand.

Its settings arrive over the socket (FD), then it stores batches until the worker's
end closes. Its logs are the worker's (the same JSON lines on the same stderr)."""

import signal
import sys
from multiprocessing.connection import Connection

from api.logs import configure
from service import writer


def main(argv: list[str]) -> None:
    # A Ctrl-C or SIGTERM to the server's process group reaches this child too: it goes
    # on storing what its worker already sent, and stops when the worker closes its end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    connection = Connection(int(argv[0]))
    writer.serve(connection, configure_logs=configure)


if __name__ == "__main__":
    main(sys.argv[1:])
