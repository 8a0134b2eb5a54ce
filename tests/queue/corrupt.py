#!/usr/bin/env python3
"""A complete queue file that qmgr cannot read is set aside in corrupt/,
with the warning Postfix's qmgr logs (`saving corrupt file "ID" from
queue "incoming" to queue "corrupt"`), and not read again at every queue
scan. Rostfix only: the file is one of Rostfix's own queue files with
its first record's type broken (Postfix's files have another format).

Usage: corrupt.py
"""

import importlib.util
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402

spec = importlib.util.spec_from_file_location("queue_tools", os.path.join(HERE, "run.py"))
tools = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tools)


def main():
    subject, bin_dir = common.subject()
    if subject != "rostfix":
        print("corrupt queue file: Rostfix only (skipped)")
        return 0
    tmp = tempfile.mkdtemp(prefix="queue-corrupt-")
    inst = tools.delivery.Instance(subject, bin_dir, tmp, os.path.join(HERE, "case"))
    try:
        inst.start()
        # A complete queue file to break: a message deferred by a retry:
        # route, taken out of deferred/ so that only the broken copy is
        # left for qmgr.
        tools.submit(inst, ["-f", "alice@example.test", "a@retry.example"],
                     "Subject: to be broken\n\nbody\n")
        tools.wait_for("a deferred message", lambda: len(tools.queue_ids(inst, "deferred")) == 1)
        inst.settle()
        qid = tools.queue_ids(inst, "deferred")[0]
        with open(os.path.join(inst.queue, "deferred", qid), "rb") as f:
            data = bytearray(f.read())
        data[0] = 0xFF
        broken = os.path.join(inst.queue, "incoming", "." + qid + ".broken")
        with open(broken, "wb") as f:
            f.write(data)
        os.rename(broken, os.path.join(inst.queue, "incoming", qid))
        os.unlink(os.path.join(inst.queue, "deferred", qid))
        # A new qmgr takes over what incoming/ holds.
        tools.run(inst, "postfix", "-c", inst.etc, "reload", stream="stderr")
        saved = os.path.join(inst.queue, "corrupt", qid)
        tools.wait_for("the file in corrupt/", lambda: os.path.exists(saved))
        inst.settle()
        log = open(os.path.join(inst.dir, "maillog")).read()
        want = f'postfix/qmgr[{{pid}}]: warning: saving corrupt file "{qid}" from queue "incoming" to queue "corrupt"'
        lines = [l for l in log.splitlines() if "saving corrupt file" in l]
        failures = []
        if len(lines) != 1 or not lines[0].endswith(want.split("]: ", 1)[1]):
            failures.append(f"log: expected one line ending {want!r}, got {lines}")
        if os.path.exists(os.path.join(inst.queue, "incoming", qid)):
            failures.append("the broken file is still in incoming/")
        with open(saved, "rb") as f:
            if f.read() != bytes(data):
                failures.append("the file in corrupt/ is not the broken file")
    finally:
        inst.stop()
    if failures:
        print("\n".join(failures))
        print(f"corrupt queue file: FAILED (kept {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print("corrupt queue file: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
