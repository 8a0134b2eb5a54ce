"""What the end-to-end test scripts share: ports, users, waiting, checks.

A script in tests/<dir>/ imports it after putting tests/ on sys.path:

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import common
"""

import os
import pwd
import socket
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Debian's master.cf, reduced to the services the dialog and delivery
# runners need, nothing chrooted, smtpd on 127.0.0.1:{port}.
MASTER_CF = """\
# Written by a test runner (tests/common.py) from Debian's master.cf.
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{port} inet n -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
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
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def load_test(name):
    """tests/NAME/run.py as the module `NAME_run`: every test is a script
    named run.py, so a plain import would find the caller's own."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        f"{name}_run", os.path.join(ROOT, "tests", name, "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def subject():
    """(SUBJECT, the directory of its commands): Rostfix's release build
    (or ROSTFIX_BIN), or Debian's Postfix with SUBJECT=postfix."""
    name = os.environ.get("SUBJECT", "rostfix")
    if name == "rostfix":
        return name, os.environ.get("ROSTFIX_BIN", os.path.join(ROOT, "target", "release"))
    return name, "/usr/sbin"


def private_main_cf(dir, mail_owner):
    """The main.cf lines every private test instance starts with: its
    directories and log file under `dir`, loopback only, no DNS."""
    return f"""compatibility_level = 3.6
config_directory = {dir}/etc
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = {mail_owner}
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_peername_lookup = no
"""


def free_port():
    """A loopback TCP port nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def users():
    """(mail_owner, mailbox uid, mailbox gid) for a private instance: as
    root, Postfix's `postfix` user runs smtpd and `nobody` owns the
    mailboxes; otherwise everything is the invoking user."""
    if os.geteuid() == 0:
        vmail = pwd.getpwnam("nobody")
        return "postfix", vmail.pw_uid, vmail.pw_gid
    me = pwd.getpwuid(os.getuid())
    return me.pw_name, me.pw_uid, me.pw_gid


def wait_listening(port, seconds=20):
    """Waits until something accepts on 127.0.0.1:port; False on timeout."""
    deadline = time.time() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            if time.time() > deadline:
                return False
            time.sleep(0.05)


class Checks:
    """Named checks, printed as they run; `failures` lists those that failed."""

    def __init__(self):
        self.failures = []

    def __call__(self, ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            self.failures.append(what)
