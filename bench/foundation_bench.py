"""Foundation benchmark: `cfemu dev` throughput next to a bare aiohttp handler, fixture cost, start-up time.

    .venv/bin/python bench/foundation_bench.py [--duration 5] [--connections 32] [--fixture-runs 200]

1. requests/s for examples/hello through a real `cfemu dev` process and for a bare aiohttp "hello"
   handler, measured in the same run by the same load generator (wrk when installed, else a raw
   asyncio HTTP/1.1 keep-alive client in its own process); the figure is the ratio (aim >= 0.7).
2. The in-process fixture's cost per test: fresh `Runtime.from_config` + one fetch + close (median;
   aim < 20 ms).
3. `cfemu dev` start-up to first response (median of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "hello"
PYTHON = sys.executable
CFEMU = [str(Path(PYTHON).parent / "cfemu")] if (Path(PYTHON).parent / "cfemu").exists() else [PYTHON, "-m", "cfemu.cli"]

BARE_SERVER = r'''
import sys
from aiohttp import web

async def hello(request):
    return web.Response(text="Hello from cfemu!")

async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print("Ready on http://127.0.0.1:%d" % site._server.sockets[0].getsockname()[1], flush=True)
    import asyncio
    await asyncio.Event().wait()

import asyncio
asyncio.run(main())
'''


# -- load generation --------------------------------------------------------------------------------

async def _raw_load(host: str, port: int, path: str, connections: int, duration: float, warmup: float) -> int:
    """Keep-alive GETs on `connections` sockets; counts responses completed inside the window."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    counts = [0] * connections
    totals = [0] * connections
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    end = start + duration

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if match:
                await reader.readexactly(int(match.group(1)))
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head[:100])
            totals[i] += 1
            now = loop.time()
            if now >= end:
                break
            if now >= start:
                counts[i] += 1
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts), sum(totals)


def _load_main(url: str, connections: int, duration: float, warmup: float) -> None:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)?", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3) or "/"
    try:
        import uvloop  # noqa: F401 - a faster client loop when available

        uvloop.install()
    except ImportError:
        pass
    counted, total = asyncio.run(_raw_load(host, port, path, connections, duration, warmup))
    print(counted / duration, total)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), so contention from other work cancels out."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(server: Server, connections: int, duration: float) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request), measured from a separate client process."""
    url = server.url + "/"
    cpu_before = _cpu_seconds(server.proc.pid)
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url],
                             capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
    else:
        out = subprocess.run([PYTHON, __file__, "--load", url, "--connections", str(connections),
                              "--duration", str(duration)], capture_output=True, text=True, check=True).stdout
        rps_text, total_text = out.split()
        rps, total = float(rps_text), int(total_text)
    cpu = _cpu_seconds(server.proc.pid) - cpu_before
    return rps, cpu / total * 1e6


# -- servers ----------------------------------------------------------------------------------------

class Server:
    def __init__(self, command: list[str], log: Path) -> None:
        self.log = open(log, "w+")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        match = re.search(r"Ready on (http://\S+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"server did not start: {line!r}\n{Path(log).read_text()}")
        self.url = match.group(1)
        self.ready_s = time.perf_counter() - self.started

    def first_response_s(self) -> float:
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as resp:
                    resp.read()
                return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.005)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def cfemu_dev(tmp: Path, *extra: str) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    return Server([*CFEMU, "dev", "--port", "0", "--config", str(HELLO), "--persist-to", str(tmp / "state"),
                   "--no-live-reload", *extra], tmp / "cfemu-dev.log")


# -- the measurements ---------------------------------------------------------------------------------

def throughput(tmp: Path, connections: int, duration: float, rounds: int) -> dict[str, Any]:
    """Median (requests/s, server CPU us/request) per server; rounds interleave so background load hits both."""
    bare = Server([PYTHON, "-c", BARE_SERVER], tmp / "bare.log")
    cfemu = cfemu_dev(tmp)
    try:
        samples: dict[str, list[tuple[float, float]]] = {"bare": [], "cfemu": []}
        for _ in range(rounds):
            samples["bare"].append(load(bare, connections, duration))
            samples["cfemu"].append(load(cfemu, connections, duration))
        result = {name: (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
                  for name, runs in samples.items()}
        # Each round measures both servers back to back, so a per-round ratio cancels load that drifts
        # between rounds (other work on a shared machine); report their median and spread too.
        result["paired"] = [(c[0] / b[0], b[1] / c[1]) for b, c in zip(samples["bare"], samples["cfemu"])]
        return result
    finally:
        bare.stop()
        cfemu.stop()


def fixture_cost(runs: int) -> tuple[float, float, float]:
    from cfemu.testing import Runtime

    async def one() -> float:
        t0 = time.perf_counter()
        async with Runtime.from_config(HELLO) as rt:
            resp = await rt.fetch("/")
            assert await resp.text() == "Hello from cfemu!"
        return time.perf_counter() - t0

    async def main() -> list[float]:
        await one()  # the first load imports the worker; later runtimes reuse the unchanged code
        return [await one() for _ in range(runs)]

    samples = sorted(asyncio.run(main()))
    return statistics.median(samples), samples[int(len(samples) * 0.9)], samples[0]


def start_up(tmp: Path, runs: int) -> tuple[float, float]:
    ready, first = [], []
    for i in range(runs):
        server = cfemu_dev(tmp / f"s{i}")
        first.append(server.first_response_s())
        ready.append(server.ready_s)
        server.stop()
    return statistics.median(ready), statistics.median(first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per server (median)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--fixture-runs", type=int, default=200)
    parser.add_argument("--startups", type=int, default=5)
    parser.add_argument("--load", help=argparse.SUPPRESS)  # internal: be the load generator
    args = parser.parse_args()
    if args.load:
        _load_main(args.load, args.connections, args.duration, warmup=0.5)
        return

    tmp = Path(tempfile.mkdtemp(prefix="cfemu-bench-"))
    (tmp / "s").mkdir()
    try:
        print(f"cfemu foundation benchmark ({os.cpu_count()} CPUs, load generator: "
              f"{'wrk' if shutil.which('wrk') else 'python raw keep-alive client'}, {args.connections} connections)")
        result = throughput(tmp, args.connections, args.duration, args.rounds)
        (bare, bare_cpu), (dev, dev_cpu) = result["bare"], result["cfemu"]
        ratio, cpu_ratio = dev / bare, bare_cpu / dev_cpu
        print(f"  bare aiohttp hello handler     {bare:9.0f} req/s   {bare_cpu:6.1f} us server CPU per request")
        print(f"  cfemu dev, examples/hello      {dev:9.0f} req/s   {dev_cpu:6.1f} us server CPU per request")
        print(f"  ratio cfemu/bare               {ratio:9.2f}         {cpu_ratio:6.2f} by CPU per request"
              f"   (aim >= 0.7) {'OK' if ratio >= 0.7 else 'MISSED'}")
        paired = result["paired"]
        by_rps, by_cpu = sorted(r for r, _ in paired), sorted(c for _, c in paired)
        print(f"  per-round ratios (n={len(paired)})      median {statistics.median(by_rps):4.2f} "
              f"[{by_rps[0]:.2f}-{by_rps[-1]:.2f}]   by CPU median {statistics.median(by_cpu):4.2f} "
              f"[{by_cpu[0]:.2f}-{by_cpu[-1]:.2f}]")
        median, p90, best = fixture_cost(args.fixture_runs)
        print(f"  fixture per test (from_config + fetch + close, n={args.fixture_runs})")
        print(f"      median {median * 1000:6.2f} ms   p90 {p90 * 1000:6.2f} ms   best {best * 1000:6.2f} ms"
              f"   (aim < 20 ms) {'OK' if median < 0.020 else 'MISSED'}")
        ready, first = start_up(tmp / "s", args.startups)
        print(f"  cfemu dev start-up (median of {args.startups}): 'Ready' line {ready * 1000:6.0f} ms, "
              f"first response {first * 1000:6.0f} ms   (aim < 2000 ms) {'OK' if first < 2 else 'MISSED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
