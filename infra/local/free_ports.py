"""Print N distinct TCP ports free right now on 127.0.0.1, space-separated.

All are below 55535 because SeaweedFS derives gRPC ports by adding 10000.
"""

import socket
import sys


def free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)  # held open until all are chosen, so they differ
            port = sock.getsockname()[1]
            if port < 55535:
                ports.append(port)
    finally:
        for sock in sockets:
            sock.close()
    return ports


if __name__ == "__main__":
    print(*free_ports(int(sys.argv[1])))
