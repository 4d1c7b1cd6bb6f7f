"""CPU and wall time of one pooled `select 1` transaction (Pool.run), in-process.

.venv/bin/python bench/pool.py
"""

import sys
import tempfile
import time
from pathlib import Path

# Measure this checkout, not a copy `pip install .` put in site-packages earlier.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio

from madbase.config import DbSettings
from madbase.protocol.sql import Statement, Transaction
from madbase.runtime.db import Pool
from madbase.runtime.embedded import EmbeddedPostgres


async def main():
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp), fsync=False)
        async with trio.open_nursery() as n:
            await n.start(pg.run)
            pool = Pool(pg.conninfo, DbSettings())
            tx = Transaction(statements=(Statement("select 1"),), read_only=True)
            for _ in range(500):
                await pool.run(tx)
            for _rep in range(3):
                c0 = time.process_time()
                w0 = time.perf_counter()
                for _ in range(5000):
                    await pool.run(tx)
                print(
                    f"{(time.process_time() - c0) / 5000 * 1e6:.1f} us cpu {(time.perf_counter() - w0) / 5000 * 1e6:.1f} us wall"
                )
            pool.close()
            n.cancel_scope.cancel()


trio.run(main)
