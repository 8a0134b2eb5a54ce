#!/usr/bin/env python3
"""postfix reload: new configuration and tables, no connection refused, no
session cut.

A private instance knows only alice; main.cf then gains bob and a new
smtpd_banner, and `postfix reload` runs while a client holds a session
open, with the server's TLS certificate and key replaced by new ones.
Checked: bob is refused before and accepted (and delivered) after; new
sessions greet with the new banner and show the new certificate after
STARTTLS; the session opened before the
reload still completes its message; the master logs `reload -- version
..., configuration DIR`. Then (Rostfix only, a deliberate difference) a
reload with a table that cannot be opened keeps the running configuration
and logs why, where Postfix's daemons would fail on the broken table
(a table type that does not exist).

SUBJECT=postfix runs the same against Debian's Postfix (root needed).
"""

import os
import pwd
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

SUBJECT, BIN = common.subject()

check = common.Checks()


def write_main(tmp, users, banner, extra=""):
    owner, uid, gid = common.users()
    extra = (f"smtpd_tls_cert_file = {tmp}/etc/cert.pem\n"
             f"smtpd_tls_key_file = {tmp}/etc/key.pem\n"
             "smtpd_tls_security_level = may\n") + extra
    table = ", ".join(f"{{{u}@example.test = example.test/{u}/}}" for u in users)
    path = os.path.join(tmp, "etc", "main.cf")
    with open(path, "w") as f:
        f.write(common.private_main_cf(tmp, owner) + f"""myhostname = mail.example.test
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
relayhost = [127.0.0.1]:1
mynetworks = 127.0.0.0/8
smtpd_banner = {banner}
virtual_mailbox_domains = example.test
virtual_mailbox_base = {tmp}/vmail
virtual_mailbox_maps = inline:{{ {table} }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
{extra}""")
    past = time.time() - 3600
    os.utime(path, (past, past))


def make_cert(etc, cn):
    """A new self-signed certificate for CN in etc/cert.pem and key.pem;
    returns it (DER)."""
    key, cert = os.path.join(etc, "key.pem"), os.path.join(etc, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    past = time.time() - 3600
    for f in (key, cert):
        os.utime(f, (past, past))
    return ssl.PEM_cert_to_DER_cert(open(cert).read())


def server_cert(port):
    """The certificate a new session shows after STARTTLS (DER)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.starttls(context=ctx)
        return c.sock.getpeercert(binary_form=True)


def postfix(etc, *args):
    return subprocess.run([os.path.join(BIN, "postfix"), "-c", etc, *args],
                          capture_output=True, text=True, timeout=120)


def banner(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    line = s.makefile("rb").readline().decode().strip()
    s.close()
    return line


def rcpt_code(port, rcpt):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.example")
        c.mail("someone@example.org")
        return c.rcpt(rcpt)[0]


def wait_log(tmp, pattern, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            text = open(os.path.join(tmp, "maillog"), errors="replace").read()
        except OSError:
            text = ""
        if re.search(pattern, text, re.M):
            return True
        time.sleep(0.1)
    return False


def delivered(tmp, user):
    new = os.path.join(tmp, "vmail", "example.test", user, "new")
    return len(os.listdir(new)) if os.path.isdir(new) else 0


def main():
    if SUBJECT == "postfix" and os.geteuid() != 0:
        print("skip: a private Postfix instance needs root")
        return
    tmp = tempfile.mkdtemp(prefix="reload-")
    os.chmod(tmp, 0o755)
    for d in ("etc", "queue", "data", "vmail"):
        os.mkdir(os.path.join(tmp, d), 0o755)
    etc = os.path.join(tmp, "etc")
    port = common.free_port()
    cert_before = make_cert(etc, "before.example")
    write_main(tmp, ["alice"], "$myhostname ESMTP before")
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postfix")
        os.chown(os.path.join(tmp, "data"), owner.pw_uid, owner.pw_gid)
        _, uid, gid = common.users()
        os.chown(os.path.join(tmp, "vmail"), uid, gid)
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(f"127.0.0.1:{port} inet n - n - - smtpd\n"
                "cleanup unix n - n - 0 cleanup\nqmgr unix n - n 300 1 qmgr\n"
                "rewrite unix - - n - - trivial-rewrite\nvirtual unix - n n - - virtual\n"
                "bounce unix - - n - 0 bounce\ndefer unix - - n - 0 bounce\n"
                "tlsmgr unix - - n 1000? 1 tlsmgr\n"
                "postlog unix-dgram n - n - 1 postlogd\n")
    past = time.time() - 3600
    os.utime(os.path.join(etc, "master.cf"), (past, past))
    r = postfix(etc, "start")
    if r.returncode != 0:
        print("start failed:", r.stderr)
        sys.exit(1)
    try:
        if not common.wait_listening(port):
            raise SystemExit("nothing listens")
        check(banner(port) == "220 mail.example.test ESMTP before", "the first banner")
        check(rcpt_code(port, "bob@example.test") == 550, "bob is unknown before the reload")
        check(server_cert(port) == cert_before, "STARTTLS shows the first certificate")

        # A session opened before the reload, finished after it.
        held = smtplib.SMTP("127.0.0.1", port, timeout=60)
        held.ehlo("held.example")
        held.mail("held@example.org")
        held.rcpt("alice@example.test")

        write_main(tmp, ["alice", "bob"], "$myhostname ESMTP after")
        cert_after = make_cert(etc, "after.example")
        r = postfix(etc, "reload")
        check(r.returncode == 0, f"postfix reload succeeds ({r.stderr.strip()!r})")
        check(wait_log(tmp, r"postfix/master\[\d+\]: reload -- version [\d.]+, configuration "
                       + re.escape(etc) + "$"), "the master logs the reload")
        # New processes come up with the new configuration.
        deadline = time.time() + 20
        while time.time() < deadline and banner(port) != "220 mail.example.test ESMTP after":
            time.sleep(0.2)
        check(banner(port) == "220 mail.example.test ESMTP after", "the new banner after reload")
        check(rcpt_code(port, "bob@example.test") == 250, "bob is known after the reload")
        deadline = time.time() + 20
        while time.time() < deadline and server_cert(port) != cert_after:
            time.sleep(0.2)
        check(server_cert(port) == cert_after, "STARTTLS shows the new certificate after reload")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("someone@example.org", ["bob@example.test"], "Subject: after\r\n\r\nhi\r\n")
        code, _ = held.data("Subject: held\r\n\r\nopened before the reload\r\n")
        check(code == 250, f"the session opened before the reload completes its message ({code})")
        held.quit()
        deadline = time.time() + 20
        while time.time() < deadline and (delivered(tmp, "bob") < 1 or delivered(tmp, "alice") < 1):
            time.sleep(0.1)
        check(delivered(tmp, "bob") == 1, "bob's message is delivered")
        check(delivered(tmp, "alice") == 1, "the held session's message is delivered")

        if SUBJECT == "rostfix":
            write_main(tmp, ["alice", "bob"], "$myhostname ESMTP broken",
                       extra="virtual_alias_maps = nosuchtype:/etc/postfix/virtual\n")
            os.utime(os.path.join(etc, "main.cf"))
            postfix(etc, "reload")
            check(wait_log(tmp, r"postfix/master\[\d+\]: warning: reload failed, the old "
                           r"configuration stays: "),
                  "a reload that cannot open a table is refused, and says why")
            check(banner(port) == "220 mail.example.test ESMTP after",
                  "the running configuration stays after a failed reload")
    finally:
        postfix(etc, "stop")
    if check.failures:
        print(f"reload ({SUBJECT}): {len(check.failures)} failed; kept {tmp}")
        sys.exit(1)
    subprocess.run(["rm", "-rf", tmp])
    print(f"reload ({SUBJECT}): all passed")


if __name__ == "__main__":
    main()
