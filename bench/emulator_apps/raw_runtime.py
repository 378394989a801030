"""The cheapest runtime there is: one kept-alive socket, `/next`, post a constant answer, repeat
(the next `/next` pipelined behind the answer, as `holdfast run` does).

So that `bench/emulator.py` measures the emulator (front and Runtime API), not a runtime.
"""

import os
import socket

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
API = "/2018-06-01/runtime/invocation"
ANSWER = b'{"statusCode":200,"headers":{"content-type":"text/plain"},"body":"ok"}'


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """The head of the next response (its body read and dropped) and what follows it."""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(65536)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(rest) < length:
        rest += sock.recv(65536)
    return head, rest[length:]


def main() -> None:
    sock = socket.create_connection((HOST, int(PORT)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    next_request = f"GET {API}/next HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    sock.sendall(next_request)
    while True:
        head, buffer = read_response(sock, buffer)
        request_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"lambda-runtime-aws-request-id:")
        )
        post = (
            f"POST {API}/{request_id}/response HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Length: {len(ANSWER)}\r\n\r\n"
        ).encode()
        sock.sendall(post + ANSWER + next_request)
        _, buffer = read_response(sock, buffer)  # the 202; the /next answer comes next


if __name__ == "__main__":
    main()
