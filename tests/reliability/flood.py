"""The attacker of ``test_connection_flood``, run as a process of its own so that its thousands of
sockets do not compete with the healthy client's measurements for one interpreter.

    python -m tests.reliability.flood PORT IDLE SLOW SECONDS

Opens IDLE connections that never send a byte and SLOW slowloris connections (a request head a
byte a second, reopened when the server closes them), prints ``ready`` once they are open,
holds them for SECONDS and prints one JSON line: how many idle connections opened, and how long
each slow connection lived before the server closed it.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

HEAD = b"POST /api/v1/metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 4000


async def idle_connection(port: int, held: list[asyncio.StreamWriter]) -> None:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    held.append(writer)


async def slowloris(port: int, lifetimes: list[float], stop_at: float) -> None:
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.3)
            continue
        opened = time.monotonic()
        closed_by_server = False
        try:
            for byte in HEAD:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1), timeout=1.0)
                    closed_by_server = True  # EOF or an answer: the server is done with us
                    break
                except TimeoutError:
                    if time.monotonic() >= stop_at:
                        break
        except OSError:
            closed_by_server = True
        finally:
            if closed_by_server:
                lifetimes.append(time.monotonic() - opened)
            writer.close()
        await asyncio.sleep(0.3)


async def flood(port: int, idle: int, slow: int, seconds: float) -> dict[str, object]:
    held: list[asyncio.StreamWriter] = []
    lifetimes: list[float] = []
    for start in range(0, idle, 250):
        await asyncio.gather(*(idle_connection(port, held) for _ in range(start, min(idle, start + 250))))
    stop_at = time.monotonic() + seconds
    tasks = [asyncio.ensure_future(slowloris(port, lifetimes, stop_at)) for _ in range(slow)]
    await asyncio.sleep(0.5)
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    for writer in held:
        writer.close()
    return {"idle_opened": len(held), "slow_lifetimes": lifetimes}


def main() -> None:
    port, idle, slow, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    print(json.dumps(asyncio.run(flood(port, idle, slow, seconds))), flush=True)


if __name__ == "__main__":
    main()
