"""Attach over a WebSocket (GET /containers/{id}/attach/ws) with the
websocket-client package from PyPI: send a line to the container's stdin,
read its stdout and stderr unmultiplexed in binary messages, then the close
that follows its exit.

usage: ws_attach.py <unix socket path> <container>
"""
import socket
import sys

import websocket


def main():
    path, container = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    url = "ws://localhost/v1.50/containers/%s/attach/ws?stream=1&stdin=1&stdout=1&stderr=1" % container
    ws = websocket.create_connection(url, socket=sock, timeout=60)
    ws.send_binary(b"hello\n")
    data = b""
    while True:
        opcode, payload = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if opcode != websocket.ABNF.OPCODE_BINARY:
            sys.exit("expected binary messages, got opcode %d" % opcode)
        data += payload
    want = {b"got:hello", b"err:hello"}
    lines = set(data.split(b"\n")) - {b""}
    if lines != want:
        sys.exit("unexpected output %r" % data)
    print("ws attach ok")


if __name__ == "__main__":
    main()
