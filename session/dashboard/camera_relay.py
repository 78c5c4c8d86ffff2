"""The camera relay: runs in a container of its own on the run's swarm overlay, where the dashboard (a process on the
host, which is not on the overlay) cannot go, and passes camera streams from the workers' web_video_server to it.

DRfC's viewer does the same with nginx on the overlay (scripts/viewer/start.sh: `location /<worker address> {
proxy_pass http://<worker address>:8080; }`, docker/docker-compose-webviewer-swarm.yml), published on port 8100 of
every interface through the swarm's ingress, with the workers' addresses fixed when it starts (`dr-update-viewer`
after a restart). This relay listens on a unix socket only, in a folder of the dashboard's user bind-mounted from
the host: no port of any interface, of the host or of the overlay. It takes the same requests as DRfC's nginx,
`GET /<worker address>/stream?topic=...`, and passes one on only when the address is on the overlay (`--network`)
and the topic is a camera's (`--topic`), to port 8080; the dashboard looks the address up per request, so a worker
that restarts with a new address is followed without restarting anything here.

Standard library only, and Python 3.8: it runs on the simulator image's own Python, not on the dashboard's venv.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import threading
from typing import List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

PORT = 8080  # web_video_server's
MAX_HEAD = 8192  # a request's line and headers; the dashboard's are a few hundred bytes
TIMEOUT_S = 30.0  # to connect to a worker, and between two reads (the dashboard's own TIMEOUT_S)
CHUNK = 64 * 1024
PARAMETERS = {"topic", "quality", "width", "height"}  # what the dashboard asks (session.dashboard.video)
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def target(request_line: str, networks: Sequence[Network], topics: Sequence[str]) -> Tuple[str, str]:
    """(worker address, web_video_server's request target) for one request line, or ValueError saying why not."""
    parts = request_line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1."):
        raise ValueError("only GET /<worker address>/stream?topic=<camera topic> is relayed")
    url = urlsplit(parts[1])
    _, address, rest = (url.path.split("/", 2) + ["", ""])[:3]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is no worker address") from None
    if not any(ip in network for network in networks):
        raise ValueError(f"{ip} is not on the run's network")
    if rest != "stream":
        raise ValueError("only web_video_server's /stream is relayed")
    query = parse_qs(url.query, keep_blank_values=True)
    asked = query.get("topic", [])
    if len(asked) != 1 or asked[0] not in topics:
        raise ValueError("only a camera's topic is relayed")
    if not set(query) <= PARAMETERS:
        raise ValueError(f"only {', '.join(sorted(PARAMETERS))} are relayed")
    return str(ip), f"/stream?{url.query}"


def _answer(client: socket.socket, status: str, why: str) -> None:
    body = (why + "\n").encode()
    client.sendall(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                   "Connection: close\r\n\r\n".encode() + body)


def _head(client: socket.socket) -> Optional[bytes]:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(MAX_HEAD)
        if not chunk or len(head) + len(chunk) > MAX_HEAD:
            return None
        head += chunk
    return head


def serve(client: socket.socket, networks: Sequence[Network], topics: Sequence[str]) -> None:
    """One request: checked, then the worker's answer passed back as it comes until either side ends."""
    worker: Optional[socket.socket] = None
    try:
        client.settimeout(TIMEOUT_S)
        head = _head(client)
        if head is None:
            return
        try:
            address, path = target(head.split(b"\r\n", 1)[0].decode("latin-1"), networks, topics)
        except ValueError as refused:
            _answer(client, "403 Forbidden", str(refused))
            return
        try:
            worker = socket.create_connection((address, PORT), timeout=TIMEOUT_S)
        except OSError as error:
            _answer(client, "502 Bad Gateway", f"{address}:{PORT} does not answer: {error}")
            return
        worker.sendall(f"GET {path} HTTP/1.1\r\nHost: {address}:{PORT}\r\nConnection: close\r\n\r\n".encode())
        while True:
            chunk = worker.recv(CHUNK)
            if not chunk:
                return
            client.sendall(chunk)  # fails once the dashboard closed its end: the page went away
    except OSError:
        return
    finally:
        for end in (worker, client):
            if end is not None:
                end.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("socket", help="the unix socket to listen on")
    parser.add_argument("--network", action="append", required=True, help="an address range of the run's network")
    parser.add_argument("--topic", action="append", required=True, help="a camera topic that may be relayed")
    args = parser.parse_args(argv)
    networks = [ipaddress.ip_network(text) for text in args.network]
    os.umask(0o077)  # the socket: the dashboard's user only (the container runs as that user)
    if os.path.exists(args.socket):
        os.unlink(args.socket)  # a relay before this one left it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(args.socket)
    listener.listen(16)
    print(f"camera relay on {args.socket} for {', '.join(args.network)}", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, networks, args.topic), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
