"""Keep servers that cannot be told where to listen on loopback: Orthanc 1.10 and DCMTK's
dcmqrscp bind 0.0.0.0. A tiny LD_PRELOAD library, built once per process with the system's C
compiler into a private (0700) folder, turns their bind() to the any-address into one to
127.0.0.1 (::1 for IPv6); :func:`check_loopback` then proves it from /proc/net/tcp."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .proc_net import LISTEN, tcp_sockets

_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real;
    if (!real) real = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in in4;
        memcpy(&in4, addr, sizeof in4);
        if (in4.sin_addr.s_addr == htonl(INADDR_ANY))
            in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return real(fd, (const struct sockaddr *)&in4, sizeof in4);
    }
    if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 in6;
        memcpy(&in6, addr, sizeof in6);
        if (!memcmp(&in6.sin6_addr, &in6addr_any, sizeof in6addr_any))
            in6.sin6_addr = in6addr_loopback;
        return real(fd, (const struct sockaddr *)&in6, sizeof in6);
    }
    return real(fd, addr, len);
}
"""


class LoopbackUnavailable(RuntimeError):
    """The shim cannot be built, or a server listens beyond loopback anyway."""


@functools.cache
def _library() -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LoopbackUnavailable(
            "no C compiler (cc): needed to keep test servers on 127.0.0.1 (Debian: gcc)"
        )
    folder = Path(tempfile.mkdtemp(prefix="dicom-sync-loopback-"))  # 0700, ours alone
    atexit.register(shutil.rmtree, folder, True)  # servers already started keep it mapped
    source, library = folder / "loopback_bind.c", folder / "loopback_bind.so"
    source.write_text(_SOURCE)
    built = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise LoopbackUnavailable(f"cannot build the loopback shim: {built.stderr.strip()}")
    return library


def loopback_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the shim preloaded."""
    env = dict(os.environ if env is None else env)
    preload = env.get("LD_PRELOAD", "")
    env["LD_PRELOAD"] = f"{_library()} {preload}".strip()
    return env


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at ``port`` (from /proc/net/tcp{,6});
    e.g. {"127.0.0.1"}, {"0.0.0.0"}, {"::1"}."""
    return {s.local_address for s in tcp_sockets() if s.state == LISTEN and s.local_port == port}


def check_loopback(name: str, *ports: int) -> None:
    """Raise :class:`LoopbackUnavailable` when ``name`` listens beyond loopback on a port."""
    for port in ports:
        wide = listening_addresses(port) - {"127.0.0.1", "::1"}
        if wide:
            raise LoopbackUnavailable(f"{name} listens on {', '.join(sorted(wide))}:{port}")
