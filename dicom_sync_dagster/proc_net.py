"""The kernel's TCP socket tables (Linux /proc/net/tcp and tcp6), read in one place for what
checks who listens where (sandbox, loopback_only) and the tests that count connections."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LISTEN, ESTABLISHED = "0A", "01"  # the tables' hexadecimal socket states


@dataclass(frozen=True)
class TcpSocket:
    local_address: str  # "127.0.0.1", "0.0.0.0", "::1"
    local_port: int
    remote_port: int
    state: str  # LISTEN, ESTABLISHED, ...
    inode: str


def _address(hexadecimal: str) -> str:
    raw = bytes.fromhex(hexadecimal)
    if len(raw) == 4:
        return ".".join(str(b) for b in raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # little-endian 32-bit words
    return str(ipaddress.IPv6Address(words))


def tcp_sockets() -> Iterator[TcpSocket]:
    """Every IPv4 and IPv6 TCP socket of this network namespace."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, _, local_port = fields[1].partition(":")
            yield TcpSocket(
                _address(local),
                int(local_port, 16),
                int(fields[2].rpartition(":")[2], 16),
                fields[3],
                fields[9],
            )


def socket_inodes(pid: int | str = "self") -> set[str]:
    """The inodes of the sockets process ``pid`` holds open (empty when it is gone)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes
