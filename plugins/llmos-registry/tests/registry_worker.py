"""A separate process for the concurrency and crash tests (run as a script).

    python registry_worker.py register NAME COUNT WORKER GO_FILE   # COUNT registrations, prints JSON
    python registry_worker.py loop NAME WORKDIR                    # registers until killed

The database and home come from LLMOS_DATABASE_URL / LLMOS_HOME.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry_testtools import make_model, tensor, write_safetensors  # noqa: E402


def register_many(name: str, count: int, worker: int, go_file: str) -> None:
    from llmos_registry import open_registry

    reg = open_registry()
    work = Path(os.environ["LLMOS_HOME"]) / f"src-{worker}"
    print("ready", flush=True)
    while not os.path.exists(go_file):  # start together
        time.sleep(0.005)
    numbers, errors = [], []
    for i in range(count):
        # one tensor shared by everyone (same blob written concurrently), one unique
        src = make_model(work / str(i), [0, 1000 * worker + i], n=32)
        try:
            numbers.append(reg.register_version(name, src, description=f"w{worker}-{i}").number)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"numbers": numbers, "errors": errors}))


def loop(name: str, workdir: str) -> None:
    from llmos_registry import open_registry

    reg = open_registry()
    rnd = random.Random(os.getpid())
    print("ready", flush=True)
    i = 0
    while True:
        src = Path(workdir) / f"v{os.getpid()}-{i}"
        src.mkdir(parents=True)
        (src / "config.json").write_text(json.dumps({"i": i, "pid": os.getpid()}))
        write_safetensors(
            src / "model.safetensors",
            {f"t{k}": tensor(rnd.randrange(4) if k < 4 else rnd.randrange(1 << 30), n=16384) for k in range(8)},
        )
        digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
        reg.register_version(name, src, description=json.dumps(digests, sort_keys=True), aliases=["newest"])
        i += 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "register":
        register_many(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif cmd == "loop":
        loop(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown command {cmd}")
