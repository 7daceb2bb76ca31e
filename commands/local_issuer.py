"""The demo's issuer service, run in this process.

It serves the issuer (``issuer.server``) on a world's home (``commands.home``), packages that
may not import each other, so it sits above both, here; the tests use it too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from commands.home import Home


@contextmanager
def local_issuer(home: Home) -> Iterator[str]:
    """The issuer service of ``home`` on a free loopback port, in this process, on the time its
    clients state (the demo's ``--at``); its URL."""
    import uvicorn  # noqa: PLC0415 - only the demo runs a server in process

    from issuer.server import build  # noqa: PLC0415

    token = uuid.uuid4().hex
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build(home.root, token, client_time=True),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    saved = {name: os.environ.get(name) for name in ("KOALA_ISSUER", "KOALA_OPERATOR_TOKEN")}
    os.environ.update(KOALA_ISSUER=url, KOALA_OPERATOR_TOKEN=token)
    try:
        yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.should_exit = True
        thread.join(5)
        sock.close()
