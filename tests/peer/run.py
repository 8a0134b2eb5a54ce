#!/usr/bin/env python3
"""Two mail systems: one relays to the other over SMTP.

Instance A (the subject: Rostfix, or Debian's Postfix with
SUBJECT=postfix) has no local domains and `relayhost = [127.0.0.1]:PORT_B`;
instance B (always Rostfix: a peer that Rostfix did not have to write
for A) hosts example.net in a Maildir. Python's smtplib sends three
messages to A, in one session each, and two of them in one transaction
with two recipients; the test then checks:

  * A's log: each recipient `relay=127.0.0.1[127.0.0.1]:PORT_B ... status=sent
    (250 2.0.0 Ok: queued as ID)` with the ID B logged for it;
  * B's log: the message from A arrived (`client=localhost...`) and was
    delivered to each Maildir;
  * the Maildir files: B's Received header names A's myhostname as HELO
    (`from relay.example.test`), A's own Received header is below it, and
    the body arrived byte for byte, dot-stuffed lines included;
  * a message from a sender whose NOTIFY=SUCCESS B supports: A sends no
    success report itself (B speaks DSN), B does, to the sender's
    domain (here: A's relay again, so the report is in B's log).

Usage: run.py [--keep]
"""

import os
import re
import shutil
import smtplib
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

ROSTFIX_BIN = os.environ.get("ROSTFIX_BIN", os.path.join(common.ROOT, "target", "release"))


class Instance:
    def __init__(self, name, bin_dir, base, extra):
        self.name = name
        self.bin = bin_dir
        self.dir = os.path.join(base, name)
        self.port = common.free_port()
        mail_owner, self.uid, self.gid = common.users()
        for d in ("etc", "queue", "data", "vmail"):
            os.makedirs(os.path.join(self.dir, d), 0o755)
        if os.geteuid() == 0:
            import pwd
            o = pwd.getpwnam(mail_owner)
            os.chown(os.path.join(self.dir, "data"), o.pw_uid, o.pw_gid)
            os.chown(os.path.join(self.dir, "vmail"), self.uid, self.gid)
        with open(os.path.join(self.dir, "etc", "main.cf"), "w") as f:
            f.write(common.private_main_cf(self.dir, mail_owner))
            f.write(extra.format(dir=self.dir, uid=self.uid, gid=self.gid))
        with open(os.path.join(self.dir, "etc", "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.port))
        past = time.time() - 3600
        for n in os.listdir(os.path.join(self.dir, "etc")):
            os.utime(os.path.join(self.dir, "etc", n), (past, past))

    def run(self, *args):
        import subprocess
        return subprocess.run([os.path.join(self.bin, args[0]), *args[1:]],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=60, env=dict(os.environ, LC_ALL="C"))

    def start(self):
        p = self.run("postfix", "-c", os.path.join(self.dir, "etc"), "start")
        if p.returncode != 0 or not common.wait_listening(self.port, 10):
            raise RuntimeError(f"{self.name} did not start: {p.stdout.decode()}")

    def stop(self):
        self.run("postfix", "-c", os.path.join(self.dir, "etc"), "stop")

    def log(self):
        try:
            return open(os.path.join(self.dir, "maillog"), errors="replace").read()
        except FileNotFoundError:
            return ""


B_MAIN = """myhostname = mx.example.net
mydestination = localhost
mynetworks = 127.0.0.1/32
relayhost = [127.0.0.1]:1
alias_maps =
virtual_mailbox_domains = example.net
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = static:example.net/inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
"""

A_MAIN = """myhostname = relay.example.test
mydestination = localhost
mynetworks = 127.0.0.1/32
relayhost = [127.0.0.1]:{port_b}
alias_maps =
"""

BODY = "First line.\r\n.A line that starts with a dot.\r\n..Two dots.\r\nLast line.\r\n"


def main(argv):
    keep = "--keep" in argv
    subject, bin_a = common.subject()
    check = common.Checks()
    base = tempfile.mkdtemp(prefix="peer-")
    os.chmod(base, 0o755)
    b = Instance("b", ROSTFIX_BIN, base, B_MAIN)
    a = Instance("a", bin_a, base, A_MAIN.replace("{port_b}", str(b.port)))
    try:
        b.start()
        a.start()
        sent = []
        with smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.example", timeout=30) as c:
            c.sendmail("sender@example.test", ["alice@example.net", "bob@example.net"],
                       "From: sender@example.test\r\nSubject: two recipients\r\n\r\n" + BODY)
            sent.append("two recipients")
        with smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.example", timeout=30) as c:
            c.ehlo()
            c.sendmail("sender@example.test", ["carol@example.net"],
                       "From: sender@example.test\r\nSubject: success report\r\n\r\n" + BODY,
                       rcpt_options=["NOTIFY=SUCCESS"])
        deadline = time.time() + 15
        while time.time() < deadline:
            if len(re.findall(r"status=sent", b.log())) >= 3 and \
                    len(re.findall(r"status=sent", a.log())) >= 3:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        alog, blog = a.log(), b.log()
        b_ids = set(re.findall(r"postfix/cleanup\[\d+\]: ([0-9A-F]+): message-id", blog))
        relayed = re.findall(r"to=<(\w+)@example\.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                             + str(b.port) + r", .*status=sent \(250 2\.0\.0 Ok: queued as ([0-9A-F]+)\)",
                             alog)
        check(sorted(r for r, _ in relayed) == ["alice", "bob", "carol"],
              f"A relayed alice, bob and carol to B: {relayed}")
        check(all(i in b_ids for _, i in relayed), "the queue IDs A logged are B's")
        delivered = re.findall(r"postfix/virtual\[\d+\]: [0-9A-F]+: to=<(\w+)@example\.net>.*"
                               r"status=sent \(delivered to maildir\)", blog)
        check(sorted(delivered) == ["alice", "bob", "carol"], f"B delivered them: {delivered}")
        check(len(re.findall(r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=", blog)) == 2,
              "B saw two transactions (the two-recipient message went once)")
        check("sender delivery status notification" not in alog,
              "A sent no success report for mail B took (B speaks DSN)")
        check(re.search(r"[0-9A-F]+: sender delivery status notification", blog) is not None,
              "B sent the success report NOTIFY=SUCCESS asked for")
        new = os.path.join(b.dir, "vmail", "example.net", "inbox", "new")
        files = sorted(os.listdir(new)) if os.path.isdir(new) else []
        check(len(files) >= 3, f"B's Maildir has the messages: {len(files)} files")
        for name in files:
            text = open(os.path.join(new, name), encoding="utf-8", errors="replace").read()
            if "Subject: two recipients" not in text and "Subject: success report" not in text:
                continue
            received = re.findall(r"^Received: from (\S+) ", text, re.M)
            check(received[:2] == ["relay.example.test", "client.example"],
                  f"{name}: B's Received names A's HELO, A's own follows: {received}")
            body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
            check(body == BODY.replace("\r\n", "\n"), f"{name}: the body arrived as sent")
    finally:
        a.stop()
        b.stop()
        if check.failures and keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"peer ({subject} relaying to rostfix): {len(check.failures)} failed checks")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
