"""A training process for the crash and lock tests of tests/test_train.py (run as a script).

    python tests/child_train.py '{"mode": "crash", "crash_at": 2, "config": {...}}'

- ``crash``: train; once the final save has begun (the ``save`` of a finished run, or
  ``finish``), die with ``os._exit`` at the ``crash_at``-th atomic write of it, after the
  temporary file is written and before it is moved into place: what a power cut or an OOM kill
  does (no ``finally``, no cleanup, the run folder's lock left behind).
- ``hold``: enter ``train()`` and, once it holds the run folder, print ``HOLDING`` and wait
  for a line on stdin (then return without training).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path


def main() -> None:
    args = json.loads(sys.argv[1])
    import mtdtl.io as io
    from mtdtl.training import TrainConfig, loop, train

    if args["mode"] == "crash":
        crash_at = int(args["crash_at"])
        final, count = [False], [0]
        save, finish = loop._Run.save, loop._Run.finish

        def final_save(self, **kw):
            if self.finished:
                final[0] = True
            return save(self, **kw)

        def final_finish(self):
            final[0] = True
            return finish(self)

        real = io.atomic_path

        @contextlib.contextmanager
        def atomic_path(path, **kw):
            with real(path, **kw) as tmp:
                yield tmp
                if final[0]:
                    if count[0] == crash_at:
                        print("CRASH", Path(path).name, flush=True)
                        os._exit(17)
                    count[0] += 1

        loop._Run.save, loop._Run.finish = final_save, final_finish
        io.atomic_path = loop.atomic_path = atomic_path
    elif args["mode"] == "hold":
        def hold(self):
            print("HOLDING", flush=True)
            sys.stdin.readline()
            return self.out

        loop._Run.run = hold
    train(TrainConfig(**args["config"]), progress=False)
    print("RETURNED", flush=True)


if __name__ == "__main__":
    main()
