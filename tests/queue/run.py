#!/usr/bin/env python3
"""The queue tools against a queue with active, deferred and held mail:
`postqueue -p` (and `mailq`, `sendmail -bp`), `postqueue -j` and the
words of `postsuper -h`, compared with what Debian's Postfix 3.7 printed
for the same queue (expected.txt, written by --record).

The queue, built in a private instance (tests/delivery's Instance with
case/ as its case directory), by local submissions:

  * four messages deferred by retry: routes (case/transport): one to
    a@retry.example, one from the null sender, one with recipients in
    both retry domains (two reasons, one longer than a line), one to be
    held;
  * the one to be held, held with `postsuper -h ID`;
  * one message active: it waits on an alias command that sleeps.

What is compared, normalized so that one text holds for both subjects:
queue IDs become Q1, Q2... in the order the first listing shows them,
message sizes and arrival times become SIZE and DATE (the ID, mark and
size columns are checked by a pattern instead), the messages of one
queue are sorted by sender and first recipient (Postfix lists them in
directory order), and the JSON lines' arrival_time and message_size
become placeholders. Reason and recipient lines, blank lines, the header
and the summary are compared as printed, except that the recipients of a
message are sorted by reason (Postfix lists them in the order its
parallel deliveries finished).

Usage: run.py [--record]   (SUBJECT=postfix to run Postfix, as root)
"""

import importlib.util
import json
import os
import re
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "delivery", os.path.join(os.path.dirname(HERE), "delivery", "run.py"))
delivery = importlib.util.module_from_spec(spec)
spec.loader.exec_module(delivery)

EXPECTED = os.path.join(HERE, "expected.txt")

ENTRY = re.compile(r"^(?P<id>[0-9A-Za-z]{6,})(?P<mark>[*!]?) +(?P<size>\d+) "
                   r"(?P<date>\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)  (?P<sender>.*)$")

def submit(inst, args, text):
    c = delivery.Command("sendmail", args)
    c.stdin = text
    out = inst.submit(c)
    if not out[0].endswith("exit 0"):
        raise SystemExit(f"sendmail {' '.join(args)}: {out}")


def run(inst, name, *args, argv0=None, stream="stdout"):
    """A command of the subject's: its standard output (or error)."""
    import subprocess
    env = dict(os.environ, LC_ALL="C")
    env.pop("MAIL_CONFIG", None)
    proc = subprocess.run([argv0 or name, *args], executable=os.path.join(inst.bin, name),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"{argv0 or name} {' '.join(args)} exited {proc.returncode}: "
                         f"{proc.stderr.decode()}")
    return (proc.stdout if stream == "stdout" else proc.stderr).decode("utf-8", "replace")


def queue_ids(inst, queue):
    d = os.path.join(inst.queue, queue)
    found = []
    for root, _, files in os.walk(d):
        found += files
    return found


def active_count(inst):
    """Messages `postqueue -j` calls active (where their files are is each
    subject's own business: Postfix moves them into active/, Rostfix
    delivers new mail where it arrived)."""
    listing = run(inst, "postqueue", "-c", inst.etc, "-j")
    return sum(json.loads(line).get("queue_name") == "active"
               for line in listing.splitlines() if line.strip())


def wait_for(what, test, seconds=20):
    deadline = time.time() + seconds
    while not test():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def build(inst):
    """Fills the queue; returns the postsuper output lines."""
    body = "Subject: {}\n\nbody\n"
    submit(inst, ["-f", "alice@example.test", "a@retry.example"], body.format("one"))
    submit(inst, ["-f", "<>", "b@retry.example"], body.format("bounce"))
    submit(inst, ["-f", "carol@example.test", "c1@retry.example", "c2@later.example",
                  "c3@retry.example"], body.format("three"))
    submit(inst, ["-f", "dave@example.test", "d@retry.example"], body.format("held"))
    wait_for("four deferred messages", lambda: len(queue_ids(inst, "deferred")) == 4)
    inst.settle()
    held = None
    for qid in queue_ids(inst, "deferred"):
        with open(os.path.join(inst.dir, "maillog")) as f:
            if re.search(qid + r": from=<dave@example.test>", f.read()):
                held = qid
    if held is None:
        raise SystemExit("cannot find dave's message in the maillog")
    out = run(inst, "postsuper", "-c", inst.etc, "-h", held, stream="stderr").splitlines()
    submit(inst, ["-f", "erin@example.test", "slow@localhost"], body.format("slow"))
    wait_for("an active message", lambda: active_count(inst) == 1)
    time.sleep(0.5)
    return out


def normalize_listing(text, ids):
    """The -p listing with IDs, sizes and dates normalized, messages of
    one queue class sorted."""
    lines = text.rstrip("\n").split("\n")
    if lines == ["Mail queue is empty"]:
        return text
    head, rest = lines[0], lines[1:]
    blocks, cur = [], []
    tail = []
    for line in rest:
        if line.startswith("-- "):
            tail.append(re.sub(r"^-- \d+ Kbytes", "-- N Kbytes", line))
        elif line == "":
            if cur:
                blocks.append(cur)
            cur = []
        else:
            cur.append(line)
    if cur:
        blocks.append(cur)
    parsed = []
    for b in blocks:
        m = ENTRY.match(b[0])
        if not m:
            raise SystemExit(f"entry line not in Postfix's layout: {b[0]!r}")
        recipients = [l for l in b[1:] if not l.lstrip().startswith("(")]
        parsed.append((m, recipients[:1], b[1:]))
    # Active first, then the rest (deferred), then held: Postfix's order;
    # within one, by sender. IDs are numbered in this order.
    rank = {"*": 0, "": 1, "!": 2}
    parsed.sort(key=lambda p: (rank[p[0].group("mark")], p[0].group("sender"), p[1]))
    out = [head]
    for i, (m, _, rest) in enumerate(parsed):
        if i:
            out.append("")
        qid = ids.setdefault(m.group("id"), f"Q{len(ids) + 1}")
        out.append(f"{qid}{m.group('mark')} SIZE DATE  {m.group('sender')}")
        out += regroup(rest)
    return "\n".join(out + [""] + tail) + "\n"


def regroup(lines):
    """A message's reason and recipient lines in a stable order: Postfix
    lists recipients in the order its parallel deliveries logged them.
    Each recipient keeps the reason line (as printed) it was under; they
    are sorted by reason, then address, and a reason line is shown where
    the reason changes, as the listing does."""
    pairs, reason = [], None
    for line in lines:
        if line.lstrip().startswith("("):
            reason = line
        else:
            pairs.append((reason or "", line))
    pairs.sort(key=lambda p: (p[0].strip(), p[1]))
    out, last = [], None
    for reason, rcpt in pairs:
        if reason and reason != last:
            out.append(reason)
        last = reason
        out.append(rcpt)
    return out


def normalize_json(text, ids):
    rows = []
    for line in text.splitlines():
        obj = json.loads(line)
        keys = list(obj.keys())
        obj["queue_id"] = ids.get(obj["queue_id"], "Q?")
        obj["arrival_time"] = "T"
        obj["message_size"] = "S"
        obj["recipients"].sort(key=lambda r: (r.get("delay_reason", ""), r["address"]))
        rows.append((obj["queue_name"], obj["sender"], "keys: " + ", ".join(keys),
                     json.dumps(obj)))
    rows.sort()
    return "".join(f"{r[2]}\n{r[3]}\n" for r in rows)


def document(inst, postsuper_out):
    ids = {}
    listing = run(inst, "postqueue", "-c", inst.etc, "-p")
    out = ["== postqueue -p", normalize_listing(listing, ids).rstrip("\n")]
    for name, text in (("mailq", run(inst, "sendmail", "-C", inst.etc, argv0="mailq")),
                       ("sendmail -bp", run(inst, "sendmail", "-C", inst.etc, "-bp"))):
        same = text == listing
        out.append(f"== {name}: {'the same as postqueue -p' if same else 'DIFFERENT'}")
    out.append("== postqueue -j")
    out.append(normalize_json(run(inst, "postqueue", "-c", inst.etc, "-j"), ids)
               .rstrip("\n"))
    out.append("== postsuper -h (standard error)")
    for line in postsuper_out:
        for qid, q in ids.items():
            line = line.replace(qid, q)
        out.append(line)
    return "\n".join(out) + "\n"


def main():
    record = "--record" in sys.argv[1:]
    subject, bin_dir = common.subject()
    if record and subject != "postfix":
        raise SystemExit("--record runs SUBJECT=postfix")
    tmp = tempfile.mkdtemp(prefix="queue-tools-")
    inst = delivery.Instance(subject, bin_dir, tmp, os.path.join(HERE, "case"))
    try:
        inst.start()
        postsuper_out = build(inst)
        actual = document(inst, postsuper_out)
    finally:
        inst.stop()
    if record:
        with open(EXPECTED, "w") as f:
            f.write("# Recorded from Postfix by SUBJECT=postfix tests/queue/run.py --record\n")
            f.write(actual)
        print(actual)
        print("queue tools: recorded")
        return 0
    expected = "".join(l for l in open(EXPECTED) if not l.startswith("# "))
    if actual == expected:
        print(f"queue tools ({subject}): ok")
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    import difflib
    print("".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                       "expected", "actual")))
    print(f"queue tools ({subject}): FAILED (kept {tmp})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
