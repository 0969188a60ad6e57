#!/usr/bin/env python3
"""Clients of bench/slow-readers.sh: SLOW websocket clients of a lobby server that connect,
log in, answer pings blindly and never read again, and one client that reads everything and
sends public messages of SIZE bytes (each reaches every connected socket) as fast as they come
back, for SECONDS. Prints one line per second: messages sent, slow clients still open.

Usage: slow_readers.py HOST PORT SLOW SIZE SECONDS
"""
import asyncio
import os
import socket
import sys
import time

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def frame(text: str) -> bytes:
    """One masked websocket text frame, as a client sends it."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def handshake(host: str, port: int):
    """Upgrades to websocket and connects namespace `/`; returns (reader, writer, leftover)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}\r\n"
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\n\r\n"
        ).encode()
        + frame("40")
    )
    seen = b""
    while b'40{"sid"' not in seen:
        chunk = await asyncio.wait_for(reader.read(4096), 10)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        seen += chunk
    return reader, writer, seen


class Frames:
    """Server-to-client websocket frames (unmasked) from a stream reader."""

    def __init__(self, reader, leftover: bytes):
        self.reader = reader
        self.buf = leftover.split(b"\r\n\r\n", 1)[1]

    async def _need(self, n: int):
        while len(self.buf) < n:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    async def next(self) -> bytes:
        await self._need(2)
        n = self.buf[1] & 0x7F
        at = 2
        if n == 126:
            await self._need(4)
            n, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            await self._need(10)
            n, at = int.from_bytes(self.buf[2:10], "big"), 10
        await self._need(at + n)
        payload, self.buf = self.buf[at : at + n], self.buf[at + n :]
        return payload


async def slow_client(host, port, i, open_set, pong_every):
    reader, writer, _ = await handshake(host, port)
    writer.write(frame(f'42["login","slow{i}"]'))
    open_set.add(i)
    # Never reads again; answers the server's pings blindly, as a client that keeps its
    # session alive but has stopped processing what it receives.
    try:
        while True:
            await asyncio.sleep(pong_every)
            writer.write(frame("3"))
            await asyncio.wait_for(writer.drain(), 5)
            if writer.transport.is_closing():
                break
    except (ConnectionError, OSError, asyncio.TimeoutError):
        pass
    finally:
        open_set.discard(i)
        writer.close()


async def sender(host, port, size, seconds, stats):
    reader, writer, leftover = await handshake(host, port)
    frames = Frames(reader, leftover)
    writer.write(frame('42["login","sender"]'))
    content = "x" * (size - 16)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        writer.write(frame(f'42["publicMessage","{n} {content}"]'))
        await writer.drain()
        want = f'"content":"{n} '.encode()
        while True:
            payload = await frames.next()
            if payload == b"2":
                writer.write(frame("3"))
            elif want in payload:
                break
        n += 1
        stats["sent"] = n
    writer.close()


async def main():
    host, port, slow, size, seconds = sys.argv[1], int(sys.argv[2]), *map(int, sys.argv[3:6])
    open_set = set()
    stats = {"sent": 0}
    tasks = []
    for i in range(slow):
        tasks.append(asyncio.create_task(slow_client(host, port, i, open_set, 10)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    while len(open_set) < slow:
        failed = [t for t in tasks if t.done() and t.exception()]
        if failed:
            raise failed[0].exception()
        await asyncio.sleep(0.1)
    print(f"@connected {slow}", flush=True)
    send = asyncio.create_task(sender(host, port, size, seconds, stats))
    start = time.monotonic()
    while not send.done():
        await asyncio.sleep(1)
        print(
            f"@tick t={time.monotonic() - start:.0f}s sent={stats['sent']} slow_open={len(open_set)}",
            flush=True,
        )
    send.result()
    print(f"@done sent={stats['sent']} slow_open={len(open_set)}", flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
