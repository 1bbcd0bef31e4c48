"""``traincost serve``: the calculator as a local web page (:mod:`traincost.web`), on loopback unless told."""

from __future__ import annotations

import ipaddress
import math
import socket

import click

from traincost.cli.app import main
from traincost.errors import TraincostError, TraincostUsageError


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 127.0.0.1 keeps the page on this machine, 0.0.0.0 opens it to the network "
                   "(no user code runs and every request is bounded, but there is no login).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: a free one, printed).")
@click.option("--time-limit", "time_limit_s", type=float, default=30.0, show_default=True,
              help="Seconds one prediction may take before the request gets an error.")
@click.option("--access-log", is_flag=True, help="Print one line per request.")
def serve_command(host: str, port: int, time_limit_s: float, access_log: bool) -> None:
    """Serve the calculator in a browser: compare GPUs and clouds in a page, and the JSON API behind it.

    GET /api/predict and /api/compare take the options of 'traincost predict' and 'compare' as query
    parameters (batch_size=64) and answer what their --json prints; /api/gpus, /api/models list the catalog
    and the model names. Needs the web extra: pip install 'traincost[web]'.
    """
    if not math.isfinite(time_limit_s) or time_limit_s <= 0:
        raise TraincostUsageError(f"--time-limit must be a positive number of seconds, got {time_limit_s:g}")
    try:
        import uvicorn
    except ImportError:
        raise TraincostUsageError("traincost serve needs the web extra: pip install 'traincost[web]' "
                                  "(FastAPI and uvicorn)") from None
    from traincost.web.app import create_app

    app = create_app(time_limit_s=time_limit_s)
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"traincost: serving the calculator on http://{shown}:{bound}/ (Ctrl+C stops)")
    if not _is_loopback(host):
        click.echo(f"note: {host} is reachable from other machines: anyone who can reach port {bound} can use the "
                   "page (no user code runs, requests are bounded, there is no login)", err=True)
    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``: a taken port or unknown address is one line, before any serving."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TraincostUsageError(f"--host {host!r}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise TraincostError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
