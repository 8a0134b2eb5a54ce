#!/usr/bin/env python3
"""Crash test: no message that got 250 is lost across kill -9.

Starts a private Rostfix (virtual Maildir delivery), sends MESSAGES messages
from CLIENTS concurrent smtplib clients, kills the whole mail system with
SIGKILL at a random moment while they send, restarts it, and waits until
every acknowledged message is in the Maildir. Each message carries a unique
Message-Id; the report counts acknowledged, delivered, lost and duplicates.
Exit status 1 if anything acknowledged is lost.

Usage: tests/crash/run.py [MESSAGES] [CLIENTS] [VICTIM]
  (defaults 2000, 20, all). VICTIM all kills the master's whole process
  group and starts the mail system again; smtpd or qmgr kills only that
  child, and the master must replace it by itself.
"""

import os
import random
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("ROSTFIX_BIN", os.path.join(ROOT, "target", "release"))


def setup(tmp, port):
    etc = os.path.join(tmp, "etc")
    os.makedirs(etc)
    # As root the mail system drops to mail_owner (postfix) for smtpd and
    # writes mailboxes as virtual_uid_maps says: give both what they need.
    os.chmod(tmp, 0o755)
    mail_owner, uid, gid = common.users()
    os.mkdir(os.path.join(tmp, "vmail"), 0o755)
    os.chown(os.path.join(tmp, "vmail"), uid, gid)
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(f"""queue_directory = {tmp}/spool
maillog_file = {tmp}/maillog
inet_interfaces = 127.0.0.1
myhostname = mail.example.test
mydestination =
alias_maps =
local_recipient_maps =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_mailbox_base = {tmp}/vmail
virtual_mailbox_maps = inline:{{ {{alice@example.test = example.test/alice/}} }}
compatibility_level = 3.6
queue_run_delay = 1s
minimal_backoff_time = 1s
mail_owner = {mail_owner}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
""")
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(f"127.0.0.1:{port} inet n - n - - smtpd\n"
                "virtual unix - n n - - virtual\n")
    return etc


def postfix(etc, *args):
    return subprocess.run([os.path.join(BIN, "postfix"), "-c", etc, *args],
                          capture_output=True, text=True, timeout=60)


def master_pid(tmp):
    try:
        return int(open(os.path.join(tmp, "spool", "pid", "master.pid")).read().strip())
    except (OSError, ValueError):
        return None


def delivered_ids(tmp):
    new = os.path.join(tmp, "vmail", "example.test", "alice", "new")
    ids = []
    if not os.path.isdir(new):
        return ids
    for name in os.listdir(new):
        with open(os.path.join(new, name), "rb") as f:
            for line in f:
                if line.lower().startswith(b"message-id:"):
                    ids.append(line.split(b":", 1)[1].strip().decode())
                    break
    return ids


def child_pid(master, name):
    """The pid of the master's child whose command name is `name`."""
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if ppid == master and comm == name:
            return int(p)
    return None


def main(argv):
    messages = int(argv[0]) if argv else 2000
    clients = int(argv[1]) if len(argv) > 1 else 20
    victim = argv[2] if len(argv) > 2 else "all"
    if victim not in ("all", "smtpd", "qmgr"):
        print("victim: all, smtpd or qmgr")
        return 2
    with tempfile.TemporaryDirectory(prefix="crash-") as tmp:
        port = common.free_port()
        etc = setup(tmp, port)
        r = postfix(etc, "start")
        if r.returncode != 0:
            print(r.stderr)
            return 2
        acked, lock = [], threading.Lock()
        counter = iter(range(messages))
        next_lock = threading.Lock()

        def client():
            while True:
                with next_lock:
                    n = next(counter, None)
                if n is None:
                    return
                mid = f"<crash-{n}@test>"
                body = f"Message-Id: {mid}\r\nSubject: {n}\r\n\r\n" + ("x" * 70 + "\r\n") * 60
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                        s.sendmail("sender@example.org", ["alice@example.test"], body)
                    with lock:
                        acked.append(mid)
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.05)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        # Kill once a random share of the messages is under way.
        target = random.randint(messages // 10, messages // 2)
        deadline = time.time() + 120
        while len(acked) < target and time.time() < deadline:
            time.sleep(0.01)
        pid = master_pid(tmp)
        if victim == "all":
            if pid:
                # The whole mail system: the master and its children (it
                # leads its own process group).
                os.killpg(pid, signal.SIGKILL)
            killed_at = len(acked)
            time.sleep(0.5)
            r = postfix(etc, "start")
            restarted = r.returncode == 0
            if not restarted:
                print("restart failed:", r.stderr.strip())
        else:
            # One child; the master must start a new one by itself.
            child = child_pid(pid, victim) if pid else None
            restarted = child is not None
            if child:
                os.kill(child, signal.SIGKILL)
            else:
                print(f"no {victim} process under the master")
            killed_at = len(acked)
        for t in threads:
            t.join(timeout=300)
        # Wait for the queue to drain.
        want = set(acked)
        deadline = time.time() + 120
        while time.time() < deadline:
            got = delivered_ids(tmp)
            if want <= set(got):
                break
            time.sleep(0.5)
        got = delivered_ids(tmp)
        postfix(etc, "stop")
        if os.environ.get("CRASH_SHOW_LOG"):
            print(open(os.path.join(tmp, "maillog")).read()[-3000:])
            for d in ("incoming", "active", "deferred"):
                print(d, len(os.listdir(os.path.join(tmp, "spool", d))))
        lost = want - set(got)
        dups = len(got) - len(set(got))
        print(f"crash test: {messages} messages, {clients} clients, killed {victim} after {killed_at} acknowledged; "
              f"acknowledged {len(want)}, delivered {len(set(got))}, lost {len(lost)}, duplicates {dups}")
        if lost:
            print("lost:", sorted(lost)[:20])
        ok = restarted and not lost
        print(f"{int(ok)} passed, {int(not ok)} failed")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
