"""Serving the app on its port, from bind to exit.

- The port is bound before the app starts, so a busy port is one clear line and exit 2
  (`ListenError`), not a traceback after `started` and `stopped`.
- Slow peers meet deadlines: a request's headers must arrive within `header_timeout_s` of
  the connection opening or of the previous answer (aiohttp's keep-alive timer, which
  closes a connection whose next request has not been parsed by then), its body within
  `body_timeout_s` (edge.read_json). At most `max_connections` are open at a time
  (guard.Guard refuses the rest with a 503), and the open-file limit is raised to fit them.
- SIGTERM or SIGINT: stop accepting, let open requests finish for `shutdown_drain_s`, then
  end the streams still open cleanly (drain.Drain); a few seconds later whatever is left
  is cancelled. The app's cleanup then commits everything pending, and the exit is 0.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import socket

import structlog
from aiohttp import web

from bandit_router.config.tomlcheck import ConfigError
from bandit_router.core.settings import ServerConfig
from bandit_router.http.appkeys import DRAIN
from bandit_router.http.guard import Guard, Throttled, exception_handler

log = structlog.get_logger("bandit_router")
BACKLOG = 1024
END_GRACE_S = 3.0  # after the drain deadline: for ended streams to finish, then cancel
SPARE_FILES = 256  # descriptors beyond the connections: the store, upstream calls, logs


class ListenError(ConfigError):
    """The configured address cannot be listened on: reported like a bad config value."""


def bind(server: ServerConfig, reuse_port: bool = False) -> socket.socket:
    where = f"{server.host}:{server.port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            server.host, server.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError("server.host", f"cannot listen on {where}: unknown host "
                                         f"({exc.strerror}; or --host)") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError("server.port", f"cannot listen on {where}: "
                                         f"{(exc.strerror or str(exc)).lower()} (or --port)"
                          ) from None
    sock.setblocking(False)
    return sock


def raise_file_limit(connections: int) -> int:
    """Lift the soft open-file limit toward the hard one, to hold `connections` plus spares;
    the limit in force after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning("file_limit_low", limit=soft, max_connections=connections,
                    why="server.max_connections needs more open files than the hard limit "
                        "allows; connections past it will fail to be accepted (raise "
                        "ulimit -n, or lower server.max_connections)")
    return soft


def run(app: web.Application, server: ServerConfig, sock: socket.socket) -> int:
    try:
        return asyncio.run(_serve(app, server, sock))
    finally:
        sock.close()


async def _serve(app: web.Application, server: ServerConfig, sock: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(exception_handler(
        Throttled(lambda **kw: log.error("accept_failed", **kw))))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    raise_file_limit(server.max_connections)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=server.header_timeout_s,
                           shutdown_timeout=server.shutdown_drain_s + END_GRACE_S,
                           # a client that hangs up cancels its handler, and so its
                           # upstream call
                           handler_cancellation=True)
    await runner.setup()
    try:
        guard = Guard(runner.server, server.max_connections,
                      Throttled(lambda **kw: log.warning("connection_refused", **kw)))
        listener = await loop.create_server(guard, sock=sock, backlog=BACKLOG)
        port = sock.getsockname()[1]
        log.info("listening", url=f"http://{server.host}:{port}", max_connections=guard.limit)
        await stop.wait()
        listener.close()
        log.info("stopping", open_connections=guard.open, open_streams=app[DRAIN].streams,
                 drain_s=server.shutdown_drain_s)
        app[DRAIN].begin(loop.time() + server.shutdown_drain_s)
    finally:
        await runner.cleanup()
    return 0
