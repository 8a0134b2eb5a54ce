#!/usr/bin/env python3
"""Seed guide 000 end to end: its main.cf, its tables and its telnet session.

The guide's main.cf (tests/seeds/000/main.cf) is used as written, with only
what cannot be on a test machine changed: paths move under a temporary
directory, the daemons listen on a loopback port, mail_owner and the
virtual uid/gid become users this machine has, proxy_interfaces (a host
name needing DNS) is dropped, relayhost points at a closed loopback port,
and mynetworks (blanked in the guide) is the loopback network. The
guide's vmailbox, virtual and aliases files are built with the subject's
own postmap/postalias, and Debian's master.cf runs as is (smtp bound to
the loopback port).

The session is sent twice, by a raw socket with the guide's exact lines
and by Python's smtplib. Checked: the guide's reply codes; two files in
d.mazzocchio's Maildir, each beginning with Return-Path, X-Original-To,
Delivered-To and Received as the guide shows, with Message-Id and Date
added; the guide's log lines in order for each queue ID; and pflogsumm's
summary of the log (2 received, 2 delivered) when pflogsumm is installed.

SUBJECT=postfix runs the same test against Debian's Postfix.
"""

import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SUBJECT, BIN = common.subject()

# The guide's tables, as it lists them.
VMAILBOX = """info@kernel-panic.it          kernel-panic.it/info/
d.mazzocchio@kernel-panic.it  kernel-panic.it/d.mazzocchio/
"""
VIRTUAL = """root@kernel-panic.it\t\troot@localhost.kernel-panic.it
postmaster@kernel-panic.it\tpostmaster@localhost.kernel-panic.it
abuse@kernel-panic.it\t\tpostmaster@localhost.kernel-panic.it
"""
ALIASES = "root: d.mazzocchio@kernel-panic.it\n"

# The guide's telnet session: what the client typed, and the reply code
# each line gets (None: no reply, message text).
SESSION = [
    (None, 220),
    ("HELO somedomain.org", 250),
    ("mail from: someone@somedomain.org", 250),
    ("rcpt to: d.mazzocchio@kernel-panic.it", 250),
    ("DATA", 354),
    ("From: someone@somedomain.org", None),
    ("To: d.mazzocchio@kernel-panic.it", None),
    ("Subject: Test mail", None),
    ("", None),
    ("It works!", None),
    (".", 250),
    ("QUIT", 221),
]

MASTER_CF = """\
# Debian's master.cf with smtp bound to a loopback port and nothing chrooted.
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

check = common.Checks()


def main_cf(tmp, owner, uid, gid):
    """The guide's main.cf with the machine-specific lines replaced."""
    replace = {
        "queue_directory": f"{tmp}/queue",
        "mail_owner": owner,
        "inet_interfaces": "127.0.0.1",
        "mynetworks": "127.0.0.0/8",
        "relayhost": "[127.0.0.1]:1",
        "alias_maps": f"hash:{tmp}/etc/aliases",
        "alias_database": f"hash:{tmp}/etc/aliases",
        "virtual_mailbox_base": f"{tmp}/vmail",
        "virtual_mailbox_maps": f"hash:{tmp}/etc/vmailbox",
        "virtual_alias_maps": f"hash:{tmp}/etc/virtual",
        "virtual_minimum_uid": str(uid),
        "virtual_uid_maps": f"static:{uid}",
        "virtual_gid_maps": f"static:{gid}",
    }
    # Installation paths of the guide's OpenBSD port: the subject's own.
    drop = {"command_directory", "daemon_directory", "sendmail_path", "newaliases_path",
            "mailq_path", "html_directory", "manpage_directory", "readme_directory",
            "setgid_group", "proxy_interfaces"}
    out = []
    with open(os.path.join(HERE, "000", "main.cf")) as f:
        for line in f:
            m = re.match(r"([a-z_]+)\s*=", line)
            if m and m.group(1) in drop:
                continue
            if m and m.group(1) in replace:
                line = f"{m.group(1)} = {replace.pop(m.group(1))}\n"
            out.append(line)
    out.append("\n# The test machine\n")
    out += [f"{k} = {v}\n" for k, v in replace.items()]
    out += [f"data_directory = {tmp}/data\n", f"maillog_file = {tmp}/maillog\n",
            f"maillog_file_prefixes = {tmp}\n", "inet_protocols = ipv4\n",
            "smtpd_peername_lookup = no\n", "compatibility_level = 3.6\n"]
    return "".join(out)


def command(name, *args):
    proc = subprocess.run([os.path.join(BIN, name), *args], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"{name} {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")
    return proc.stdout


def raw_session(port):
    """The guide's lines over a socket; the reply codes in order."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    codes = []

    def reply():
        while True:
            line = f.readline().decode()
            if line[3:4] != "-":
                return int(line[:3])

    for text, code in SESSION:
        if text is not None:
            s.sendall(text.encode() + b"\r\n")
        if code is not None:
            codes.append(reply())
    s.close()
    return codes


def serving_uid(port):
    """The uid of the process holding the server side of a new SMTP
    connection (not the listener: the session)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.recv(512)
    client_port = c.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
                inode = fields[9]
    uid = None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]" for fd in fds):
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("Uid:"):
                        uid = int(line.split()[2])  # effective
        except OSError:
            continue
    c.close()
    return uid


def smtplib_session(port):
    msg = ("From: someone@somedomain.org\r\nTo: d.mazzocchio@kernel-panic.it\r\n"
           "Subject: Test mail\r\n\r\nIt works!\r\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        code, _ = c.helo("somedomain.org")
        refused = c.sendmail("someone@somedomain.org", ["d.mazzocchio@kernel-panic.it"], msg)
    return code, refused


def main():
    root = os.geteuid() == 0
    if SUBJECT == "postfix" and not root:
        print("skip: a private Postfix instance needs root")
        return
    owner, uid, gid = common.users()
    tmp = tempfile.mkdtemp(prefix="seed000-")
    os.chmod(tmp, 0o755)
    etc = os.path.join(tmp, "etc")
    for d in ("etc", "queue", "data", "vmail"):
        os.mkdir(os.path.join(tmp, d), 0o755)
    if root:
        postfix_user = pwd.getpwnam("postfix")
        os.chown(os.path.join(tmp, "data"), postfix_user.pw_uid, postfix_user.pw_gid)
        os.chown(os.path.join(tmp, "vmail"), uid, gid)
    port = common.free_port()
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(main_cf(tmp, owner, uid, gid))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(port=port))
    for name, text in (("vmailbox", VMAILBOX), ("virtual", VIRTUAL), ("aliases", ALIASES)):
        with open(os.path.join(etc, name), "w") as f:
            f.write(text)
    past = time.time() - 3600
    for name in os.listdir(etc):
        os.utime(os.path.join(etc, name), (past, past))
    command("postmap", "-c", etc, f"hash:{etc}/vmailbox")
    command("postmap", "-c", etc, f"hash:{etc}/virtual")
    command("postalias", "-c", etc, f"hash:{etc}/aliases")
    command("postfix", "-c", etc, "start")
    try:
        if not common.wait_listening(port):
            raise SystemExit(f"nothing listens on 127.0.0.1:{port}")
        codes = raw_session(port)
        check(codes == [c for _, c in SESSION if c is not None],
              f"raw session: the guide's reply codes 220 250 250 250 354 250 221 (got {codes})")
        if root:
            session_uid = serving_uid(port)
            check(session_uid == pwd.getpwnam(owner).pw_uid,
                  f"the process serving an SMTP session runs as mail_owner {owner}, not root "
                  f"(uid {session_uid})")
        code, refused = smtplib_session(port)
        check(code == 250 and refused == {}, "smtplib: HELO 250 and the message accepted")

        new = os.path.join(tmp, "vmail", "kernel-panic.it", "d.mazzocchio", "new")
        deadline = time.time() + 20
        while time.time() < deadline and len(os.listdir(new) if os.path.isdir(new) else []) < 2:
            time.sleep(0.1)
        files = sorted(os.listdir(new)) if os.path.isdir(new) else []
        check(len(files) == 2, f"two messages in kernel-panic.it/d.mazzocchio/new (got {len(files)})")
        for name in files:
            check(re.fullmatch(r"\d+\.V[0-9a-f]+I[0-9a-f]+M\d+\.[^/]+", name) is not None,
                  f"{name}: the guide's Maildir file name shape (time.VdevIino.Mmicros.host)")
            st = os.stat(os.path.join(new, name))
            check((st.st_uid, st.st_gid) == (uid, gid),
                  f"{name}: owned by virtual_uid_maps/virtual_gid_maps {uid}:{gid} "
                  f"(got {st.st_uid}:{st.st_gid})")
            text = open(os.path.join(new, name), errors="replace").read()
            head, _, body = text.partition("\n\n")
            names = [l.split(":", 1)[0] for l in head.split("\n") if l and l[0] not in " \t"]
            check(names[:4] == ["Return-Path", "X-Original-To", "Delivered-To", "Received"],
                  f"{name}: begins with Return-Path, X-Original-To, Delivered-To, Received "
                  f"(got {names[:4]})")
            check("Return-Path: <someone@somedomain.org>" in head
                  and "X-Original-To: d.mazzocchio@kernel-panic.it" in head
                  and "Delivered-To: d.mazzocchio@kernel-panic.it" in head,
                  f"{name}: the guide's envelope headers")
            check(re.search(r"^Received: from somedomain\.org \(\S+ \[127\.0\.0\.1\]\)\n"
                            r"\tby mail\.kernel-panic\.it \(\w+\) with SMTP id [0-9A-F]+\n"
                            r"\tfor <d\.mazzocchio@kernel-panic\.it>; ", head, re.M) is not None,
                  f"{name}: the guide's Received header")
            check("Message-Id" in names and "Date" in names and "Subject: Test mail" in head,
                  f"{name}: Message-Id and Date added, Subject kept")
            check(body.strip() == "It works!", f"{name}: the body")

        log = os.path.join(tmp, "maillog")
        deadline = time.time() + 10
        while time.time() < deadline and open(log).read().count(": removed") < 2:
            time.sleep(0.1)
        lines = open(log, errors="replace").read().splitlines()
        ids = []
        for l in lines:
            m = re.search(r"postfix/smtpd\[\d+\]: ([0-9A-F]+): client=", l)
            if m:
                ids.append(m.group(1))
        check(len(ids) == 2, f"two 'client=' lines (got {len(ids)})")
        for qid in ids:
            want = [
                rf"postfix/smtpd\[\d+\]: {qid}: client=\S+\[127\.0\.0\.1\]$",
                rf"postfix/cleanup\[\d+\]: {qid}: message-id=<[^>]+>$",
                rf"postfix/qmgr\[\d+\]: {qid}: from=<someone@somedomain\.org>, size=\d+, "
                r"nrcpt=1 \(queue active\)$",
                rf"postfix/virtual\[\d+\]: {qid}: to=<d\.mazzocchio@kernel-panic\.it>, "
                r"relay=virtual, delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, "
                r"status=sent \(delivered to maildir\)$",
                rf"postfix/qmgr\[\d+\]: {qid}: removed$",
            ]
            mine = [l for l in lines if f": {qid}: " in l]
            got = [next((i for i, l in enumerate(mine) if re.search(w, l)), None) for w in want]
            check(None not in got and got == sorted(got),
                  f"{qid}: the guide's log lines in order (client=, message-id=, from=, "
                  f"to=... status=sent, removed){'' if None not in got else ': ' + repr(mine)}")
        check(sum(bool(re.search(r"postfix/smtpd\[\d+\]: connect from \S+\[127\.0\.0\.1\]$", l))
                  for l in lines) >= 2
              and sum(bool(re.search(r"postfix/smtpd\[\d+\]: disconnect from \S+\[127\.0\.0\.1\]", l))
                      for l in lines) >= 2,
              "connect from / disconnect from lines")
        pflogsumm = shutil.which("pflogsumm")
        if pflogsumm:
            out = subprocess.run([pflogsumm, log], capture_output=True, text=True,
                                 timeout=60).stdout
            received = re.search(r"^\s*(\d+)\s+received$", out, re.M)
            delivered = re.search(r"^\s*(\d+)\s+delivered$", out, re.M)
            check(received is not None and received.group(1) == "2"
                  and delivered is not None and delivered.group(1) == "2",
                  "pflogsumm: 2 received, 2 delivered "
                  f"(got {received and received.group(0).strip()}, "
                  f"{delivered and delivered.group(0).strip()})")
        else:
            print("skip  pflogsumm is not installed")
    finally:
        subprocess.run([os.path.join(BIN, "postfix"), "-c", etc, "stop"],
                       capture_output=True, timeout=60)
    if check.failures:
        print(f"seed 000 ({SUBJECT}): {len(check.failures)} failed; kept {tmp}")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"seed 000 ({SUBJECT}): all passed")


if __name__ == "__main__":
    main()
