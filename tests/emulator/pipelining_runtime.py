"""A runtime that pipelines `/next` behind each response, as `holdfast run` does, and appends
what each of its socket reads returned (the status lines in it) to the file `READS_LOG` names."""

import json
import os
import re
import socket

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
API = "/2018-06-01/runtime/invocation"
LOG = os.environ["READS_LOG"]


def main() -> None:
    sock = socket.create_connection((HOST, int(PORT)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"GET {API}/next HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer or not _whole_event(buffer):
            data = sock.recv(65536)
            if not data:
                return
            with open(LOG, "a") as log:
                statuses = re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+", data)
                log.write(json.dumps([status.decode() for status in statuses]) + "\n")
            buffer += data
        tail = buffer.rpartition(b"Lambda-Runtime-Aws-Request-Id: ")[2]
        request_id = tail.partition(b"\r\n")[0].decode()
        buffer = b""
        answer = b'{"ok": true}'
        sock.sendall(
            f"POST {API}/{request_id}/response HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
            + f"GET {API}/next HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        )


def _whole_event(buffer: bytes) -> bool:
    """Whether the buffer ends with a whole `/next` answer (its body read)."""
    at = buffer.rfind(b"HTTP/1.1 200 ")
    if at < 0:
        return False
    head, separator, body = buffer[at:].partition(b"\r\n\r\n")
    if not separator:
        return False
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return len(body) >= length


if __name__ == "__main__":
    main()
