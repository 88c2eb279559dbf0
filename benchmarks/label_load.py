"""Load and fault test of `realbogus label serve` on loopback (issue 22).

Starts the real server as a subprocess (`python -m realbogus.cli label serve`) over a dataset of
--subjects small random stamps (SQLite, WAL), with --labellers people, then:

1. load: --labellers threads (one HTTP session each, no think time) each post their share of
   --classifications (next subject -> answer); checks the export holds exactly that many rows,
   none lost or duplicated, and reports "next subject" latency (p50 / p95 / max, ms);
2. paced: --paced-clients labellers answer --paced-requests subjects in all, each pausing
   U(0.5, 1.5) x --think seconds between answers as people do: "next subject" p50 / p95;
3. kill: labellers post again while the server is killed with SIGKILL mid-load, the server is
   restarted on the same database, and every classification that had been acknowledged (201)
   must be in the export, exactly once, with its answer.

The labellers are threads of this process (httpx2 clients) on the same cores as the server; each
phase also reports the CPU seconds the server process spent (from /proc, Linux) per
classification (one "next" + one answer, + one PNG with --images) and the client's own CPU
seconds, which do not depend on other load on the machine the way latencies do. Prints one JSON
object (also written to --out) with the numbers, the load average (per phase and at the end) and
the CPU count. Loopback only; bounded counts and time.

    python benchmarks/label_load.py [--subjects 10000 --labellers 50 --classifications 4000]
        [--images --stamp-size 63]     # also fetch each subject's PNG, as the page does
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pandas as pd

from realbogus.io.dataset import write_dataset
from realbogus.label.auth import hash_password
from realbogus.label.store import open_store
from realbogus.stamps import Stamps

PASSWORD = "load-test-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dataset(path: Path, n: int, size: int = 11) -> Path:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "diaSourceId": 1_000_000 + np.arange(n, dtype=np.int64),
            "label": rng.integers(0, 2, n),
            "origin": "sim",
            "snr": rng.uniform(3, 50, n),
        }
    )
    data = rng.normal(size=(n, 3, size, size)).astype(np.float32)
    stamps = Stamps(data=data, valid_fraction=np.ones(n, np.float32), edge=np.zeros(n, bool))
    return write_dataset(path, table, stamps)


class Server:
    """`realbogus label serve` as a subprocess on 127.0.0.1."""

    def __init__(
        self,
        data: Path,
        db: Path,
        log: Path,
        swap_interval: float = 10.0,
        gold_fraction: float = 0.02,
        gold_rate: float = 0.1,
    ) -> None:
        self.data, self.db, self.log = data, db, log
        self.swap_interval = swap_interval
        self.gold = ["--gold-fraction", str(gold_fraction), "--gold-rate", str(gold_rate)]
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> float:
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "realbogus.cli", "label", "serve", str(self.data)]
        cmd += ["--db", str(self.db), "--port", str(self.port), *self.gold]
        cmd += ["--swap-interval", str(self.swap_interval)]
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                msg = f"server exited with {self.proc.returncode}; its log ends:\n{tail}"
                raise RuntimeError(msg)
            try:
                if httpx.get(self.url + "/login", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                time.sleep(0.2)
        msg = f"server did not start within {timeout} s"
        raise RuntimeError(msg)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _client(url: str, name: str) -> tuple[httpx.Client, str]:
    c = httpx.Client(base_url=url, timeout=30)
    r = c.post("/api/login", json={"username": name, "password": PASSWORD})
    r.raise_for_status()
    return c, r.json()["csrf_token"]


def _label(
    session: tuple[httpx.Client, str],
    name: str,
    quota: int,
    latencies: list[float],
    acked: list[tuple[int, int, str]],
    errors: list[str],
    stop: threading.Event | None = None,
    think: float = 0.0,
    images: bool = False,
) -> None:
    """One labeller: `quota` times next -> (its image, as the page loads it, if `images`) ->
    answer (then a pause of U(0.5, 1.5) x `think` s); records next latency and
    acknowledgements."""
    c, token = session
    rng = np.random.default_rng(abs(hash(name)) % (2**32))
    done = 0
    while done < quota and not (stop is not None and stop.is_set()):
        try:
            t0 = time.perf_counter()
            r = c.get("/api/subjects/next")
            latencies.append(time.perf_counter() - t0)
            if r.status_code == 204:
                errors.append(f"{name}: queue empty after {done}")
                return
            sid = r.json()["subject_id"]
            if images:
                png = c.get(r.json()["images"]["triplet"])
                if png.status_code != 200:
                    errors.append(f"{name}: image of subject {sid}: {png.status_code}")
            answer = "real" if rng.random() < 0.5 else "bogus"
            w = c.post(
                "/api/classifications",
                json={"subject_id": sid, "answer": answer},
                headers={"X-CSRF-Token": token},
            )
            if w.status_code == 201:
                acked.append((w.json()["classification_id"], sid, answer))
                done += 1
            else:
                errors.append(f"{name}: {w.status_code} {w.text[:100]}")
            if think > 0:
                time.sleep(think * rng.uniform(0.5, 1.5))
        except httpx.HTTPError as exc:
            if stop is None:  # else the server was killed: an unacknowledged write
                errors.append(f"{name}: {exc!r}")
            return


def _logins(url: str, names: list[str]) -> list[tuple[httpx.Client, str]]:
    out: dict[str, tuple[httpx.Client, str]] = {}

    def one(name: str) -> None:
        out[name] = _client(url, name)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [out[n] for n in names]


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (Linux /proc; None elsewhere or for None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_labellers(
    url: str,
    names: list[str],
    quota: list[int],
    stop=None,
    on_start=None,
    think: float = 0.0,
    images: bool = False,
    server_pid: int | None = None,
) -> dict:
    """Log everyone in, then label in parallel (`on_start` is called when labelling begins).
    Also measures the CPU seconds the server process (`server_pid`) and this client spent."""
    sessions = _logins(url, names)
    latencies: list[float] = []
    acked: list[tuple[int, int, str]] = []
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=_label, args=(s, n, q, latencies, acked, errors, stop, think, images)
        )
        for s, n, q in zip(sessions, names, quota, strict=True)
    ]
    server0, client0 = _cpu_s(server_pid), time.process_time()
    t0 = time.monotonic()
    if on_start is not None:
        on_start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    server1, client1 = _cpu_s(server_pid), time.process_time()
    for c, _ in sessions:
        c.close()
    cpu = {"client_cpu_s": round(client1 - client0, 2)}
    if server0 is not None and server1 is not None:
        cpu["server_cpu_s"] = round(server1 - server0, 2)
        cpu["server_cpu_ms_per_classification"] = round(
            1000 * (server1 - server0) / max(len(acked), 1), 2
        )
    return {"latencies": latencies, "acked": acked, "errors": errors, "wall": wall, "cpu": cpu}


def _export(url: str) -> pd.DataFrame:
    c, _ = _client(url, "admin")
    try:
        text = c.get("/api/export").text
    finally:
        c.close()
    rows = list(csv.DictReader(io.StringIO(text)))
    return pd.DataFrame(
        {
            "classification_id": [int(r["classification_id"]) for r in rows],
            "user": [r["user_name"] for r in rows],
            "subject_id": [int(r["subject_ids"]) for r in rows],
            "answer": [json.loads(r["annotations"])[0]["value"].lower() for r in rows],
        }
    )


def _ms(x: list[float]) -> dict:
    a = np.asarray(x) * 1000
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p95_ms": round(float(np.percentile(a, 95)), 2),
        "max_ms": round(float(a.max()), 2),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=10_000)
    ap.add_argument("--labellers", type=int, default=50)
    ap.add_argument("--classifications", type=int, default=4000)
    ap.add_argument("--paced-clients", type=int, default=50)
    ap.add_argument("--paced-requests", type=int, default=1000)
    ap.add_argument("--think", type=float, default=1.0, help="mean pause between answers, s")
    ap.add_argument("--kill-after", type=float, default=3.0, help="seconds of load before SIGKILL")
    ap.add_argument("--swap-interval", type=float, default=10.0, help="serve --swap-interval")
    ap.add_argument(
        "--gold-fraction", type=float, default=0.02, help="serve --gold-fraction (SWAP needs gold)"
    )
    ap.add_argument("--gold-rate", type=float, default=0.1, help="serve --gold-rate (its default)")
    ap.add_argument(
        "--images",
        action="store_true",
        help="each labeller also fetches the subject's PNG after 'next', as the page does",
    )
    ap.add_argument("--stamp-size", type=int, default=11, help="stamp side, pixels (63: Rubin)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="label-load-") as tmp:
        tmp = Path(tmp)
        data = _dataset(tmp / "ds", args.subjects, args.stamp_size)
        db = tmp / "label.db"
        store = open_store(db)
        hashed = hash_password(PASSWORD)  # one hash for all: argon2 salts differ per hash only
        names = [f"lab{i:02d}" for i in range(args.labellers)]
        for name in names:
            store.add_user(name, hashed, "volunteer")
        store.add_user("admin", hashed, "admin")
        store.close()
        server = Server(
            data, db, tmp / "server.log", args.swap_interval, args.gold_fraction, args.gold_rate
        )
        try:
            result["startup_s"] = round(server.start(), 2)
            # 1. load
            quota = [args.classifications // len(names)] * len(names)
            for i in range(args.classifications - sum(quota)):
                quota[i] += 1
            pid = server.proc.pid
            load = _run_labellers(server.url, names, quota, images=args.images, server_pid=pid)
            exported = _export(server.url)
            acked_ids = {a[0] for a in load["acked"]}
            result["load"] = {
                "labellers": len(names),
                "acknowledged": len(load["acked"]),
                "exported_rows": len(exported),
                "duplicated_rows": int(exported["classification_id"].duplicated().sum()),
                "duplicated_pairs": int(exported.duplicated(["user", "subject_id"]).sum()),
                "missing_acknowledged": len(acked_ids - set(exported["classification_id"])),
                "errors": load["errors"][:5],
                "wall_s": round(load["wall"], 2),
                "classifications_per_s": round(len(load["acked"]) / load["wall"], 1),
                **load["cpu"],
                "load_average": os.getloadavg(),
                "next_latency": _ms(load["latencies"]),
            }
            # 2. paced: every labeller pauses between answers, as people do
            paced_names = names[: args.paced_clients]
            per = max(1, args.paced_requests // len(paced_names))
            paced = _run_labellers(
                server.url,
                paced_names,
                [per] * len(paced_names),
                think=args.think,
                images=args.images,
                server_pid=pid,
            )
            result["paced"] = {
                "labellers": len(paced_names),
                "think_s": args.think,
                "classifications": len(paced["acked"]),
                "wall_s": round(paced["wall"], 2),
                "errors": paced["errors"][:5],
                **paced["cpu"],
                "load_average": os.getloadavg(),
                "next_latency": _ms(paced["latencies"]),
            }
            # 3. SIGKILL mid-load, restart, compare
            before = set(_export(server.url)["classification_id"])
            stop = threading.Event()
            killer = threading.Timer(args.kill_after, lambda: (server.kill(), stop.set()))
            kill = _run_labellers(server.url, names, [10**6] * len(names), stop, killer.start)
            killer.join()
            result["restart_s"] = round(server.start(), 2)
            after = _export(server.url).set_index("classification_id")
            acked = pd.DataFrame(
                kill["acked"], columns=["classification_id", "subject_id", "answer"]
            )
            present = acked["classification_id"].isin(after.index)
            same = (
                after.loc[acked["classification_id"][present], ["subject_id", "answer"]].to_numpy()
                == acked.loc[present, ["subject_id", "answer"]].to_numpy()
            ).all()
            result["kill"] = {
                "acknowledged_during_load": len(acked),
                "lost_acknowledged": int((~present).sum()),
                "acknowledged_rows_match": bool(same),
                "rows_before": len(before),
                "rows_after_restart": len(after),
                "unacknowledged_but_stored": len(after) - len(before) - int(present.sum()),
                "duplicated_rows": int(after.index.duplicated().sum()),
                "errors": kill["errors"][:5],
            }
        finally:
            server.stop()
    result["load_average"] = os.getloadavg()
    result["cpus"] = os.cpu_count()
    text = json.dumps(result, indent=2)
    print(text)  # noqa: T201 - a benchmark's report
    if args.out:
        args.out.write_text(text)
    return result


if __name__ == "__main__":
    main()
