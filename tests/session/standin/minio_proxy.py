"""Stand-in for MinIO's S3 port inside the training network: forwards TCP on :9000 to an S3 server elsewhere.

No MinIO can run here (no registry). moto's S3 server plays its API, listening on the network's gateway; this
proxy runs in a container NAMED `minio` on the network, so that containers reach storage at MinIO's real
in-network name, http://minio:9000 (DRfC's DR_MINIO_URL), through Docker's own name resolution. MinIO's
liveness probe (`GET /minio/health/live`, which session.storage.minio polls) is answered here, as MinIO answers it.

    python3 minio_proxy.py TARGET_HOST TARGET_PORT
"""

import socket
import sys
import threading


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(client: socket.socket, host: str, port: int) -> None:
    first = client.recv(65536)
    if first.startswith(b"GET /minio/health/live "):
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        return
    try:
        upstream = socket.create_connection((host, port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    upstream.sendall(first)
    threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
    _pipe(client, upstream)


def main(host: str, port: int) -> None:
    server = socket.create_server(("0.0.0.0", 9000))
    print("minio stand-in: forwarding :9000", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=_serve, args=(client, host, port), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
