#!/usr/bin/env python3
"""check_policy_service: smtpd asks a policy server (Postfix's
SMTPD_POLICY_README protocol: `name=value` lines and an empty line; the
answer `action=...` and an empty line) and acts on its answer as on an
access(5) table's result.

The policy server is this script (a thread on a loopback TCP port); it
answers by the recipient's local part and keeps every request it got:

  ok@        action=OK
  reject@    action=REJECT not on my watch
  code@      action=550 5.7.0 custom refusal
  greylist@  action=DEFER_IF_PERMIT Greylisted for 60 seconds
  warn@      action=WARN just saying (logged; the mail goes on)
  chain@     action=check_policy_service inet:127.0.0.1:1 (Rostfix only:
             a server the configuration does not name is never asked;
             451 4.3.5 and a warning; Postfix's smtpd panics)
  other      action=DUNNO

The subject (Rostfix, or Debian's Postfix with SUBJECT=postfix) has
`smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:PORT,
permit` and a virtual domain whose every user exists. Checked: the RCPT
replies, the reject and warn log lines, the attributes of the requests
(request, protocol_state, protocol_name, helo_name, sender, recipient,
client_address, client_name), and, with the policy server gone, the
reply smtpd_policy_service_default_action gives. Every expected value is
Postfix 3.7's (SUBJECT=postfix passes the same checks).

Usage: run.py [--keep] [-v]
"""

import os
import re
import shutil
import smtplib
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402


peer = common.load_test("peer")

ANSWERS = {
    "ok": "OK",
    "reject": "REJECT not on my watch",
    "code": "550 5.7.0 custom refusal",
    "greylist": "DEFER_IF_PERMIT Greylisted for 60 seconds",
    "warn": "WARN just saying",
    # An answer that names a server of its own choosing: never contacted.
    # (Postfix's smtpd panics on it: "no client endpoint for server".)
    "chain": "check_policy_service inet:127.0.0.1:1",
}


class PolicyServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.lock = threading.Lock()
        self.running = True
        self.conns = []

    def start(self):
        threading.Thread(target=self.accept, daemon=True).start()

    def stop(self):
        """Gone: the listening socket and the connections smtpd keeps."""
        self.running = False
        try:
            # A close alone leaves it listening while accept() waits.
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def accept(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        f = conn.makefile("rwb")
        attrs = {}
        try:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line:
                    name, _, value = line.partition("=")
                    attrs[name] = value
                    continue
                with self.lock:
                    self.requests.append(attrs)
                local = attrs.get("recipient", "").split("@")[0]
                f.write(f"action={ANSWERS.get(local, 'DUNNO')}\n\n".encode())
                f.flush()
                attrs = {}
        except OSError:
            pass
        finally:
            conn.close()


MAIN = """myhostname = mail.example.test
mydestination = localhost
alias_maps =
virtual_mailbox_domains = example.test
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = static:example.test/inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{policy}, permit
smtpd_policy_service_timeout = 5s
"""

# (recipient, reply code, reply text), as Postfix 3.7 answered.
CASES = [
    ("ok@example.test", 250, "2.1.5 Ok"),
    ("reject@example.test", 554, "5.7.1 <reject@example.test>: Recipient address rejected: not on my watch"),
    ("code@example.test", 550, "5.7.0 <code@example.test>: Recipient address rejected: custom refusal"),
    ("greylist@example.test", 450, "4.7.1 <greylist@example.test>: Recipient address rejected: Greylisted for 60 seconds"),
    ("warn@example.test", 250, "2.1.5 Ok"),
    ("dunno@example.test", 250, "2.1.5 Ok"),
]

SERVER_DOWN = (451, "4.3.5 <late@example.test>: Recipient address rejected: Server configuration problem")


def rcpt(c, address):
    code, text = c.rcpt(address)
    return code, text.decode()


def main(argv):
    keep = "--keep" in argv
    verbose = "-v" in argv
    subject, bin_dir = common.subject()
    check = common.Checks()
    base = tempfile.mkdtemp(prefix="policy-")
    os.chmod(base, 0o755)
    server = PolicyServer()
    server.start()
    inst = peer.Instance("policy", bin_dir, base, MAIN.replace("{policy}", str(server.port)))
    try:
        inst.start()
        with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=30) as c:
            c.ehlo()
            c.mail("sender@client.example")
            for address, code, text in CASES:
                got = rcpt(c, address)
                check(got == (code, text), f"RCPT {address}: {code} {text}; got {got}")
            if subject == "rostfix":
                got = rcpt(c, "chain@example.test")
                check(got == (451, "4.3.5 Server configuration error"),
                      f"RCPT chain@example.test: 451 4.3.5 Server configuration error; got {got}")
            c.rset()
        requests = [r for r in server.requests if not r.get("recipient", "").startswith("chain@")]
        check(len(requests) == len(CASES), f"one request per RCPT: {len(requests)}")
        first = requests[0] if requests else {}
        if verbose:
            print(first)
        want = {
            "request": "smtpd_access_policy",
            "protocol_state": "RCPT",
            "protocol_name": "ESMTP",
            "helo_name": "client.example",
            "sender": "sender@client.example",
            "recipient": "ok@example.test",
            "recipient_count": "0",
            "client_address": "127.0.0.1",
            "client_name": "unknown",
        }
        for name, value in want.items():
            check(first.get(name) == value,
                  f"request attribute {name}={value}; got {first.get(name)!r}")
        for name in ("instance", "queue_id", "size", "sasl_method", "encryption_protocol"):
            check(name in first, f"request attribute {name} is sent")
        log = ""
        deadline = time.time() + 10
        while time.time() < deadline:
            log = inst.log()
            if "warn: RCPT" in log:
                break
            time.sleep(0.1)
        # Postfix has a queue ID once a recipient was accepted; Rostfix
        # makes its queue file at DATA and logs NOQUEUE until then.
        check(re.search(r"postfix/smtpd\[\d+\]: (NOQUEUE|[0-9A-F]+): reject: RCPT from unknown\[127\.0\.0\.1\]: "
                        r"450 4\.7\.1 <greylist@example\.test>: Recipient address rejected: "
                        r"Greylisted for 60 seconds; from=<sender@client\.example> "
                        r"to=<greylist@example\.test> proto=ESMTP helo=<client\.example>$",
                        log, re.M) is not None, "the greylisting reject line")
        check(re.search(r"postfix/smtpd\[\d+\]: (NOQUEUE|[0-9A-F]+): warn: RCPT from unknown\[127\.0\.0\.1\]: "
                        r"just saying; from=<sender@client\.example> to=<warn@example\.test> "
                        r"proto=ESMTP helo=<client\.example>$", log, re.M) is not None,
              "the WARN line")

        # The policy server goes away.
        server.stop()
        with smtplib.SMTP("127.0.0.1", inst.port, local_hostname="client.example", timeout=60) as c:
            c.ehlo()
            c.mail("sender@client.example")
            got = rcpt(c, "late@example.test")
            check(got == SERVER_DOWN, f"policy server down: {SERVER_DOWN}; got {got}")
        time.sleep(0.5)
        log = inst.log()
        if verbose:
            print("\n".join(l for l in log.splitlines() if "warning" in l))
        check(re.search(r"postfix/smtpd\[\d+\]: warning: problem talking to server "
                        r"127\.0\.0\.1:\d+: Connection refused$", log, re.M) is not None,
              "the warning about the policy server")
    finally:
        inst.stop()
        if check.failures and keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"policy ({subject}): {len(check.failures)} failed checks")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
