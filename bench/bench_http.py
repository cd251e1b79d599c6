"""HTTP solves/s with 16 concurrent clients against `trm serve`, as a ratio of the in-process Host's solves/s.

Both sides answer the same package with the same inputs in one run:

- baseline: ``Host.solve`` called from ``--clients`` threads in this process;
- HTTP: ``trm serve`` in a subprocess, ``--clients`` concurrent httpx (asyncio) clients in this process.

    python bench/bench_http.py [--package PKG.trm] [--seconds 10] [--clients 16]

Without ``--package`` the newest released (not pre-release) package in the repo's registry is used, else a 4x4 Sudoku package
of a random model with the shape of the sample modules (hidden 128, H 3, L 4, 8 steps) is built.
Goal: ratio >= 0.6.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def bench_package(folder: Path) -> Path:
    """The newest registry package, else a freshly built one."""
    from trm_modules.package import DirectoryRegistry

    registry = DirectoryRegistry(REPO / "registry")
    entries = [e for e in registry.list() if not e.yanked and "-" not in e.version]  # trm serve skips pre-releases
    if entries:
        return registry.path_of(entries[-1])
    import torch

    from trm_modules.model import TRM, TRMConfig
    from trm_modules.package import build_package
    from trm_modules.plugins import get_codec

    torch.manual_seed(0)
    config = TRMConfig(
        vocab_size=6,
        seq_len=16,
        puzzle_emb_ndim=128,
        puzzle_emb_len=2,
        hidden_size=128,
        num_heads=4,
        H_cycles=3,
        L_cycles=4,
        halt_max_steps=8,
    )
    codec = get_codec("sudoku", {"size": 4})
    inputs = [i for i, _ in codec.generate(np.random.default_rng(0), 2)]
    model = TRM(config).eval()
    with torch.no_grad():  # only digit tokens can win the argmax, so every answer decodes
        head = model.lm_head.weight
        head.zero_()
        u, v = torch.randn(config.hidden_size), torch.randn(config.hidden_size)
        head[2], head[3], head[4], head[5] = u, -u, v, -v
    return build_package(
        model,
        codec,
        name="bench-sudoku-4x4",
        version="1.0.0",
        out_path=folder / "bench.trm",
        examples=[(i, None) for i in inputs],
        allow_failing_examples=True,
    )


def run_in_process(package: Path, inputs: list[dict], clients: int, seconds: float) -> float:
    """Solves/s of ``Host.solve`` from ``clients`` threads."""
    from trm_modules.host import FolderSource, Host
    from trm_modules.plugins import build_plugin_manager

    # views=1 here and in the server: the untrained model's answers break the rules; this measures serving.
    with Host(
        [FolderSource(package.parent)], plugin_manager=build_plugin_manager(entry_points=True), cpu_threads=1, views=1
    ) as host:
        from trm_modules.package import open_package

        name = open_package(package).name
        host.swap(name)
        host.solve(name, inputs[0])
        done = [0] * clients
        stop = time.perf_counter() + seconds

        def client(index: int) -> None:
            i = index
            while time.perf_counter() < stop:
                host.solve(name, inputs[i % len(inputs)])
                done[index] += 1
                i += clients

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(done) / (time.perf_counter() - started)


async def run_http(
    url: str, module: str, token: str, inputs: list[dict], clients: int, seconds: float
) -> tuple[float, int]:
    """Solves/s of ``clients`` concurrent HTTP clients; also returns the number of failed requests."""
    done, failed = [0] * clients, [0]
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        await client.post(f"/v1/modules/{module}/solve", json={"input": inputs[0]})
        stop = time.perf_counter() + seconds

        async def one(index: int) -> None:
            i = index
            while time.perf_counter() < stop:
                response = await client.post(f"/v1/modules/{module}/solve", json={"input": inputs[i % len(inputs)]})
                if response.status_code == 200:
                    done[index] += 1
                else:
                    failed[0] += 1
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(clients)))
        return sum(done) / (time.perf_counter() - started), failed[0]


def start_server(package: Path, folder: Path) -> tuple[subprocess.Popen, str, str]:
    """`trm serve` over a registry holding ``package``; returns (process, url, admin+solve token)."""
    from trm_modules.package import DirectoryRegistry
    from trm_modules.server import TokenStore
    from trm_modules.store import Store

    registry = DirectoryRegistry(folder / "registry", create=True)
    registry.publish(package)
    db = str(folder / "store.sqlite3")
    token, _ = TokenStore(Store(db)).create(["solve"], name="bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_DATA_HOME": str(folder / "data")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trm_modules.cli",
            "serve",
            "--port",
            str(port),
            "--registry",
            str(registry.root),
            "--db",
            db,
            "--cpu-threads",
            "1",
            "--views",
            "1",
            "--no-bootstrap-token",
            "--allow-unsigned",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url, token
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("trm serve did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from trm_modules.package import open_package

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        package = args.package or bench_package(folder)
        pkg = open_package(package)
        inputs = [i for i, _ in pkg.codec().generate(np.random.default_rng(1), 64)]
        print(f"package {pkg.name} {pkg.version} ({package}); {args.clients} clients, {args.seconds:.0f} s each")
        baseline = run_in_process(package, inputs, args.clients, args.seconds)
        print(f"in-process Host.solve: {baseline:8.1f} solves/s")
        process, url, token = start_server(package, folder)
        try:
            http, failed = asyncio.run(run_http(url, pkg.name, token, inputs, args.clients, args.seconds))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
        print(f"HTTP (trm serve):      {http:8.1f} solves/s ({failed} failed requests)")
        print(f"ratio HTTP / in-process: {http / baseline:.2f} (goal >= 0.6)")


if __name__ == "__main__":
    main()
