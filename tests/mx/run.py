#!/usr/bin/env python3
"""MX handling of the smtp(8) client, end to end, against a DNS server of
the test's own.

Expected behaviour comes from RFC 5321 section 5 (MX lookup, preference
order, a domain without MX as its own implicit MX, trying the next host
when one cannot be reached or answers 4xx), Postfix's smtp(8) and
postconf(5) manuals on this machine (`man 8 smtp`, `man 5 postconf`:
smtp_host_lookup, smtp_tcp_port, ignore_mx_lookup_error,
smtp_defer_if_no_mx_address_found), and Debian's Postfix 3.7.11, which
passes every check here with SUBJECT=postfix (2025-11-23). Texts Postfix
writes that the manuals do not show, as it logged them in that run:

  * a domain that does not exist: Postfix treats an MX lookup that finds
    nothing (NXDOMAIN or no MX) alike, looks up the name's address and
    reports that lookup, so the reason names type=A (inet_protocols =
    ipv4), not type=MX:
      dsn=5.4.4, status=bounced (Host or domain name not found. Name
      service error for name=nosuch.example.net type=A: Host not found)
    (the same through the system resolver for `nosuch.invalid`:
    `... name=nosuch.invalid type=A: Host not found`)
  * SERVFAIL for the MX query: no address lookup follows
    (ignore_mx_lookup_error = no):
      dsn=4.4.3, status=deferred (Host or domain name not found. Name
      service error for name=servfail.example.net type=MX: Host not
      found, try again)
  * an MX host whose address lookup fails for now, or that has no address
    record; a warning first, then
      warning: no MX host for mxservfail.example.net has a valid address record
      dsn=4.4.3, status=deferred (Host or domain name not found. Name
      service error for name=broken.example.net type=A: Host not found,
      try again)
      dsn=5.4.4, status=bounced (Host or domain name not found. Name
      service error for name=noaddr.example.net type=A: Host found but no
      data record of requested type)
  * a host skipped for a refused connection, on its own line without a
    queue ID, and one skipped for a 421 greeting, with the queue ID:
      postfix/smtp[26777]: connect to dead.example.net[127.0.0.5]:59875:
      Connection refused
      postfix/smtp[26777]: 47E13996539: host busy.example.net[127.0.0.6]
      refused to talk to me: 421 4.3.2 busy.example.net Service not
      available, try later

Postfix reads its name servers from resolv.conf only (port 53, no port
setting): with SUBJECT=postfix (root) the script starts Postfix inside a
mount namespace of its own (unshare(1)) whose /etc/resolv.conf is a bind
mount naming the test's server on 127.0.0.153:53; the host's resolv.conf
is not touched. For Rostfix the server is on 127.0.0.1:<free port>, named
by `rostfix_dns_servers`.

What runs:
  * a DNS server (Debian's python3-dnslib, in threads of this script, UDP
    and TCP) answering for the zone example.net below: MX and A records,
    AAAA always empty (NOERROR, the SOA in the authority section), NXDOMAIN
    for names it does not list, SERVFAIL where ZONE says so; names outside
    the zone are refused;
  * SMTP servers (Debian's python3-aiosmtpd) on 127.0.0.2 (mx1),
    127.0.0.3 (mx2), 127.0.0.4 (nomx) and 127.0.0.6 (busy, greets with
    421) at one common free port; main.cf's `smtp_tcp_port` makes MX hosts
    reached on that port. Nothing listens on 127.0.0.5 (dead);
  * a private instance (tests/common.py) with smtp_host_lookup = dns,
    disable_dns_lookups = no, relayhost empty, inet_protocols = ipv4, and
    a virtual Maildir for the sender, where bounces arrive.

A second smtpd (syslog_name postfix/strict) has
smtpd_recipient_restrictions = reject_unknown_sender_domain,
reject_unknown_recipient_domain; UNKNOWN_DOMAIN_CASES lists its RCPT
replies for senders and recipients in the zone, as Postfix gave them. A
third (postfix/client, smtpd_peername_lookup = yes) has
smtpd_client_restrictions = reject_unknown_client_hostname; the server
answers PTR queries for 127.0.0.0/8 from REVERSE, and
UNKNOWN_CLIENT_CASES connects from three loopback addresses. A fourth
(postfix/rbl) has smtpd_client_restrictions = reject_rbl_client
rbl.example.net, a blocklist in ZONE (RBL_CASES; a lookup that fails
for now is not a listing, and a warning: RBL_LOG). A fifth (postfix/names)
has smtpd_client_restrictions = reject_unknown_reverse_client_hostname
and smtpd_helo_restrictions = reject_unknown_helo_hostname (NAME_CASES:
client addresses and EHLO names). A sixth (postfix/rhsbl) asks the
domain blocklist dbl.example.net about the client's name, its reverse
name, the HELO name, the sender's and the recipient's domain
(reject_rhsbl_client, _reverse_client, _helo, _sender, _recipient;
RHSBL_CASES). A seventh (postfix/allow) lets in only clients the
allowlist wl.example.net lists by address (permit_dnswl_client) or name
(permit_rhswl_client), which must not let them relay (ALLOW_CASES); an
allowlist lookup that fails for now defers the rejection that follows
(DEFER_IF_REJECT, 450; ALLOW_LOG).

Scenarios (one message each, sent over SMTP, checked in turn): which SMTP
server received the message (envelope and Subject), which servers were
contacted, and the maillog's `to=<...>` line (relay, dsn, status, reason):

  preference     example.net: MX 20 mx2 listed before MX 10 mx1: mx1 gets
                 it (relay=mx1.example.net[127.0.0.2]:PORT), mx2 is not
                 contacted; the MX query went to the test's server
  fallback       MX 10 dead, MX 20 mx2: delivered by mx2, the refused
                 connection logged as above
  greeting       MX 10 busy (421 greeting), MX 20 mx2: delivered by mx2,
                 the refusal logged as above
  no MX          only an A record (127.0.0.4): delivered to it
  NXDOMAIN       bounced, 5.4.4, the reason above; the sender gets the
                 notification
  SERVFAIL       the MX query fails: deferred, 4.4.3; the domain's A
                 record (127.0.0.4) is not used
  MX address     the only MX host's A query fails (SERVFAIL): deferred,
   SERVFAIL      4.4.3, with the warning
  MX host        the only MX host has no A record: bounced, 5.4.4, with
   without addr. the warning

Usage: tests/mx/run.py [--keep]   (SUBJECT=postfix: Debian's Postfix, root)
Needs python3-dnslib and python3-aiosmtpd (scripts/deps). Exit 1 on a
failed check; --keep keeps the temporary directory (kept anyway on failure).
"""

import email
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import common  # noqa: E402

SUBJECT, BIN = common.subject()
check = common.Checks()

DEBIAN = "/usr/lib/python3/dist-packages"


def debian_import(module):
    """A module from Debian's python3-* packages when the python3 running
    this is another one (pyenv): those packages are pure Python."""
    try:
        return __import__(module)
    except ImportError:
        if DEBIAN not in sys.path and os.path.isdir(os.path.join(DEBIAN, module)):
            sys.path.append(DEBIAN)
        try:
            return __import__(module)
        except ImportError as e:
            raise SystemExit(f"tests/mx needs {module} ({e}): run scripts/deps")


# ---------------------------------------------------------------- DNS

ZONE_APEX = "example.net"
ZONE = {
    # Listed worst first: the client must sort by preference.
    "example.net": {"MX": [(20, "mx2.example.net"), (10, "mx1.example.net")]},
    "fallback.example.net": {"MX": [(10, "dead.example.net"), (20, "mx2.example.net")]},
    "greeting.example.net": {"MX": [(10, "busy.example.net"), (20, "mx2.example.net")]},
    "nomx.example.net": {"A": ["127.0.0.4"]},
    # The MX query fails; the address must not be used instead.
    "servfail.example.net": {"MX": "SERVFAIL", "A": ["127.0.0.4"]},
    # An MX host whose address lookup fails for now.
    "mxservfail.example.net": {"MX": [(10, "broken.example.net")]},
    "broken.example.net": {"A": "SERVFAIL"},
    # An MX host that exists without an address record.
    "mxnoaddr.example.net": {"MX": [(10, "noaddr.example.net")]},
    "noaddr.example.net": {},
    "mx1.example.net": {"A": ["127.0.0.2"]},
    "mx2.example.net": {"A": ["127.0.0.3"]},
    "dead.example.net": {"A": ["127.0.0.5"]},
    "busy.example.net": {"A": ["127.0.0.6"]},
    "ns.example.net": {"A": ["127.0.0.1"]},
    # A DNS blocklist: 127.0.0.7 listed with a reason, 127.0.0.9 without.
    "7.0.0.127.rbl.example.net": {"A": ["127.0.0.2"], "TXT": ["Listed for testing"]},
    "9.0.0.127.rbl.example.net": {"A": ["127.0.0.2"]},
    "10.0.0.127.rbl.example.net": {"A": "SERVFAIL"},
    # A domain blocklist: names of clients, HELO names, address domains.
    "localhost.dbl.example.net": {"A": ["127.0.1.2"], "TXT": ["Client name listed"]},
    "mx1.example.net.dbl.example.net": {"A": ["127.0.1.2"]},
    "spam.example.net.dbl.example.net": {"A": ["127.0.1.2"], "TXT": ["Sender domain listed"]},
    "rcpt.example.net.dbl.example.net": {"A": ["127.0.1.2"]},
    # An allowlist of addresses and names.
    "8.0.0.127.wl.example.net": {"A": ["127.0.2.1"]},
    "localhost.wl.example.net": {"A": ["127.0.2.1"]},
    # The allowlist fails for now about 127.0.0.9.
    "9.0.0.127.wl.example.net": {"A": "SERVFAIL"},
}

# PTR records of client addresses (reverse_client scenario): 127.0.0.1's
# name resolves back to it; 127.0.0.7's names a host with another address;
# 127.0.0.8 has none (NXDOMAIN).
REVERSE = {
    "1.0.0.127.in-addr.arpa": "ns.example.net",
    "7.0.0.127.in-addr.arpa": "mx1.example.net",
}


class Dns:
    """An authoritative server for ZONE on UDP and TCP."""

    def __init__(self, address, port):
        self.address, self.port = address, port
        self.queries = []           # (name, type, protocol)
        self.lock = threading.Lock()
        self.servers = []

    def start(self):
        dnslib = debian_import("dnslib")
        import dnslib.server
        from dnslib import A, MX, PTR, QTYPE, RCODE, RR, SOA, TXT
        dns = self

        soa = RR(ZONE_APEX, QTYPE.SOA, ttl=60,
                 rdata=SOA("ns.example.net", "hostmaster.example.net", (1, 3600, 600, 86400, 60)))

        class Resolver(dnslib.server.BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                name = str(request.q.qname).rstrip(".").lower()
                qtype = QTYPE.get(request.q.qtype)
                with dns.lock:
                    dns.queries.append((name, qtype, handler.protocol))
                if name.endswith(".127.in-addr.arpa"):
                    if name not in REVERSE:
                        reply.header.rcode = RCODE.NXDOMAIN
                    elif qtype == "PTR":
                        reply.add_answer(RR(name, QTYPE.PTR, ttl=60, rdata=PTR(REVERSE[name])))
                    return reply
                if name != ZONE_APEX and not name.endswith("." + ZONE_APEX):
                    reply.header.rcode = RCODE.REFUSED
                    return reply
                records = ZONE.get(name)
                if records is None:
                    reply.header.rcode = RCODE.NXDOMAIN
                    reply.add_auth(soa)
                    return reply
                found = records.get(qtype, [])
                if found == "SERVFAIL":
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                for value in found:
                    if qtype == "MX":
                        rdata = MX(value[1], value[0])
                    elif qtype == "TXT":
                        rdata = TXT(value)
                    else:
                        rdata = A(value)
                    reply.add_answer(RR(name, getattr(QTYPE, qtype), ttl=60, rdata=rdata))
                if not found:
                    reply.add_auth(soa)     # NOERROR, no data (AAAA always)
                return reply

        # Decoding errors only.
        quiet = dnslib.server.DNSLogger(log="-request,-reply,-truncated", prefix=False)

        for tcp in (False, True):
            server = dnslib.server.DNSServer(Resolver(), address=self.address, port=self.port,
                                             tcp=tcp, logger=quiet)
            server.start_thread()
            self.servers.append(server)

    def stop(self):
        for s in self.servers:
            s.stop()
            s.server.server_close()
        self.servers = []

    def asked(self, name, qtype):
        with self.lock:
            return any(n == name and t == qtype for n, t, _ in self.queries)


def dns_port(address):
    """A port free on `address` for both UDP and TCP."""
    for _ in range(50):
        port = common.free_port()
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind((address, port))
                finally:
                    s.close()
            return port
        except OSError:
            continue
    raise SystemExit(f"no free port on {address}")


# ---------------------------------------------------------------- SMTP servers

# address -> the server's name (greeting, EHLO, `queued as`)
SERVERS = {"127.0.0.2": "mx1", "127.0.0.3": "mx2", "127.0.0.4": "nomx", "127.0.0.6": "busy"}
BUSY_GREETING = "421 4.3.2 busy.example.net Service not available, try later"


class Servers:
    """aiosmtpd on each address of SERVERS at one port, recording the
    connections and the messages each one got."""

    def __init__(self):
        self.port = None
        self.connections = {a: 0 for a in SERVERS}
        self.messages = {a: [] for a in SERVERS}   # (mail_from, rcpt_tos, subject)
        self.lock = threading.Lock()
        self.armed = False          # the controllers' own test connections do not count
        self.controllers = []

    def start(self):
        aiosmtpd = debian_import("aiosmtpd")
        import logging
        import aiosmtpd.controller
        import aiosmtpd.smtp
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        servers = self

        class Handler:
            def __init__(self, address):
                self.address = address

            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content or b"")
                with servers.lock:
                    servers.messages[self.address].append(
                        (envelope.mail_from, list(envelope.rcpt_tos), msg.get("Subject", "")))
                return f"250 2.0.0 Ok: queued as {SERVERS[self.address].upper()}"

        class Server(aiosmtpd.smtp.SMTP):
            def connection_made(self, transport):
                super().connection_made(transport)
                if servers.armed and self._original_transport is None:
                    with servers.lock:
                        servers.connections[self.event_handler.address] += 1
                self.greeted = False

            async def push(self, status):
                if (not self.greeted and servers.armed and status.startswith("220")
                        and SERVERS[self.event_handler.address] == "busy"):
                    self.greeted = True
                    await super().push(BUSY_GREETING)
                    self.transport.close()
                    return
                self.greeted = True
                await super().push(status)

        class Controller(aiosmtpd.controller.Controller):
            def factory(self):
                return Server(self.handler, **self.SMTP_kwargs)

        for _ in range(20):
            port = common.free_port()
            started = []
            try:
                for address, name in SERVERS.items():
                    c = Controller(Handler(address), hostname=address, port=port,
                                   server_hostname=f"{name}.example.net", ident="ESMTP test")
                    c.start()
                    started.append(c)
            except (OSError, RuntimeError, TimeoutError):
                for c in started:
                    c.stop()
                continue
            self.port, self.controllers = port, started
            self.armed = True
            return
        raise SystemExit("no port free on 127.0.0.2-6 for the SMTP servers")

    def stop(self):
        for c in self.controllers:
            try:
                c.stop()
            except Exception as e:          # keep stopping the others
                print(f"stopping a server: {e}", file=sys.stderr)
        self.controllers = []

    def snapshot(self):
        with self.lock:
            return dict(self.connections), {a: list(m) for a, m in self.messages.items()}


# ---------------------------------------------------------------- instance

class Instance:
    def __init__(self, tmp, dns_server, smtp_port):
        self.dir = tmp
        self.etc = os.path.join(tmp, "etc")
        self.port = common.free_port()
        self.started = False
        owner, uid, gid = common.users()
        os.chmod(tmp, 0o755)
        for d in ("etc", "queue", "data", "vmail"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        if os.geteuid() == 0:
            o = pwd.getpwnam(owner)
            os.chown(os.path.join(tmp, "data"), o.pw_uid, o.pw_gid)
            os.chown(os.path.join(tmp, "vmail"), uid, gid)
        dns_line = ""
        if SUBJECT == "rostfix":
            dns_line = f"rostfix_dns_servers = {dns_server}\n"
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# Written by tests/mx/run.py: a private instance on loopback.\n"
                    + common.private_main_cf(tmp, owner) + f"""myhostname = mail.example.test
mydomain = example.test
mydestination = localhost
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
biff = no
smtp_host_lookup = dns
disable_dns_lookups = no
smtp_tcp_port = {smtp_port}
{dns_line}virtual_mailbox_domains = example.test
virtual_mailbox_base = {tmp}/vmail
virtual_mailbox_maps = inline:{{ {{sender@example.test = example.test/sender/}} }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
""")
        # A second smtpd that checks the sender's and recipient's domains.
        self.strict_port = common.free_port()
        # And one that wants the client's name to resolve back to it.
        self.client_port = common.free_port()
        # And one that asks a DNS blocklist about the client.
        self.rbl_port = common.free_port()
        # And one that wants the client to have a name, and the EHLO name
        # to exist.
        self.names_port = common.free_port()
        # And one that asks a domain blocklist about names.
        self.rhsbl_port = common.free_port()
        # And one that lets in only what an allowlist lists.
        self.allow_port = common.free_port()
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.port)
                    + f"127.0.0.1:{self.strict_port} inet n - n - - smtpd\n"
                    "  -o syslog_name=postfix/strict\n"
                    "  -o smtpd_recipient_restrictions="
                    "reject_unknown_sender_domain,reject_unknown_recipient_domain\n"
                    f"127.0.0.1:{self.client_port} inet n - n - - smtpd\n"
                    "  -o syslog_name=postfix/client\n"
                    "  -o smtpd_peername_lookup=yes\n"
                    "  -o smtpd_client_restrictions=reject_unknown_client_hostname\n"
                    f"127.0.0.1:{self.rbl_port} inet n - n - - smtpd\n"
                    "  -o syslog_name=postfix/rbl\n"
                    "  -o smtpd_client_restrictions=reject_rbl_client,rbl.example.net\n"
                    f"127.0.0.1:{self.names_port} inet n - n - - smtpd\n"
                    "  -o syslog_name=postfix/names\n"
                    "  -o smtpd_peername_lookup=yes\n"
                    "  -o smtpd_client_restrictions=reject_unknown_reverse_client_hostname\n"
                    "  -o smtpd_helo_restrictions=reject_unknown_helo_hostname\n"
                    f"127.0.0.1:{self.rhsbl_port} inet n - n - - smtpd\n"
                    "  -o syslog_name=postfix/rhsbl\n"
                    "  -o smtpd_peername_lookup=yes\n"
                    "  -o smtpd_client_restrictions=reject_rhsbl_client,dbl.example.net,"
                    "reject_rhsbl_reverse_client,dbl.example.net\n"
                    "  -o smtpd_helo_restrictions=reject_rhsbl_helo,dbl.example.net\n"
                    "  -o smtpd_sender_restrictions=reject_rhsbl_sender,dbl.example.net\n"
                    "  -o smtpd_recipient_restrictions=reject_rhsbl_recipient,dbl.example.net\n"
                    "  -o rbl_reply_maps=texthash:$config_directory/rbl_reply\n"
                    f"127.0.0.1:{self.allow_port} inet n - n - - smtpd\n"
                    "  -o syslog_name=postfix/allow\n"
                    "  -o smtpd_peername_lookup=yes\n"
                    "  -o mynetworks=127.0.0.2/32\n"
                    "  -o smtpd_client_restrictions=permit_dnswl_client,wl.example.net,"
                    "permit_rhswl_client,wl.example.net,reject\n"
                    "  -o smtpd_relay_restrictions=permit_dnswl_client,wl.example.net,"
                    "reject_unauth_destination\n")
        # The rhsbl smtpd's replies for dbl.example.net (RHSBL_CASES).
        with open(os.path.join(self.etc, "rbl_reply"), "w") as f:
            f.write(f"dbl.example.net {RBL_REPLY}\n")
        # Postfix's resolver, in its own mount namespace (SUBJECT=postfix).
        self.resolv = os.path.join(tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {dns_server.split(':')[0]}\noptions attempts:2 timeout:2\n")
        past = time.time() - 3600
        for n in os.listdir(self.etc):
            os.utime(os.path.join(self.etc, n), (past, past))

    def postfix(self, *args):
        argv = [os.path.join(BIN, "postfix"), "-c", self.etc, *args]
        if SUBJECT == "postfix" and args[0] == "start":
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" /etc/resolv.conf && exec "$@"', self.resolv, *argv]
        env = dict(os.environ, LC_ALL="C")
        env.pop("MAIL_CONFIG", None)
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                              stdin=subprocess.DEVNULL)

    def start(self):
        self.started = True
        r = self.postfix("start")
        if r.returncode != 0:
            raise SystemExit(f"postfix start exited {r.returncode}: {r.stdout}{r.stderr}")
        for port in (self.port, self.strict_port, self.client_port, self.rbl_port,
                     self.names_port, self.rhsbl_port, self.allow_port):
            if not common.wait_listening(port, 20):
                raise SystemExit(f"nothing listens on 127.0.0.1:{port}")

    def stop(self):
        if self.started:
            r = self.postfix("stop")
            if r.returncode != 0:
                print(f"postfix stop exited {r.returncode}: {r.stdout}{r.stderr}",
                      file=sys.stderr)
            self.started = False

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def send(self, rcpt, subject):
        """Submits one message over SMTP; its queue ID (from the 250 reply)."""
        body = (f"From: sender@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                f"Message-Id: <{subject.replace(' ', '.')}@example.test>\r\n\r\n"
                "A message of tests/mx/run.py.\r\n")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail("sender@example.test")
            code, text = c.rcpt(rcpt)
            if code != 250:
                raise SystemExit(f"RCPT TO:<{rcpt}> refused: {code} {text!r}")
            code, text = c.data(body.encode())
        m = re.search(r"queued as (\S+)", text.decode("utf-8", "replace"))
        return m.group(1) if m else None

    def wait_to_line(self, rcpt, seconds=30):
        """The first maillog `to=<rcpt>` line with a status, or None."""
        pattern = re.compile(r"^.*: to=<" + re.escape(rcpt) + r">,.* status=\S+.*$", re.M)
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = pattern.search(self.maillog())
            if m:
                return m.group(0)
            time.sleep(0.1)
        return None

    def sender_mail(self):
        new = os.path.join(self.dir, "vmail", "example.test", "sender", "new")
        out = []
        if os.path.isdir(new):
            for n in sorted(os.listdir(new)):
                with open(os.path.join(new, n), encoding="utf-8", errors="replace") as f:
                    out.append(f.read())
        return out


# ---------------------------------------------------------------- scenarios

# reject_unknown_sender_domain / reject_unknown_recipient_domain, as
# Postfix 3.7.11 answered them against ZONE (unknown_address_reject_code
# 450): (MAIL FROM, RCPT TO, the RCPT reply).
UNKNOWN_DOMAIN_CASES = [
    ("x@nosuch.example.net", "sender@example.test",
     (450, "4.1.8 <x@nosuch.example.net>: Sender address rejected: Domain not found")),
    ("x@example.net", "sender@example.test", (250, "2.1.5 Ok")),
    ("sender@example.test", "u@nosuch.example.net",
     (450, "4.1.2 <u@nosuch.example.net>: Recipient address rejected: Domain not found")),
    ("sender@example.test", "u@nomx.example.net", (250, "2.1.5 Ok")),
    # Any of MX, A, AAAA will do: the A record, when MX fails for now.
    ("sender@example.test", "u@servfail.example.net", (250, "2.1.5 Ok")),
    # The name exists without any of them.
    ("sender@example.test", "u@noaddr.example.net",
     (450, "4.1.2 <u@noaddr.example.net>: Recipient address rejected: Domain not found")),
    ("sender@example.test", "u@mxnoaddr.example.net", (250, "2.1.5 Ok")),
    # No MX, A lookup fails for now.
    ("sender@example.test", "u@broken.example.net",
     (450, "4.1.2 <u@broken.example.net>: Recipient address rejected: Domain not found")),
    ("x@[127.0.0.1]", "sender@example.test", (250, "2.1.5 Ok")),
]


# reject_unknown_client_hostname, from each client address: the RCPT
# reply, as Postfix gave it.
UNKNOWN_CLIENT_CASES = [
    ("127.0.0.1", (250, "2.1.5 Ok")),
    # Its name resolves to another address.
    ("127.0.0.7", (450, "4.7.25 Client host rejected: cannot find your hostname, [127.0.0.7]")),
    # No name.
    ("127.0.0.8", (450, "4.7.25 Client host rejected: cannot find your hostname, [127.0.0.8]")),
]


# reject_rbl_client rbl.example.net, from each client address.
RBL_CASES = [
    ("127.0.0.7", (554, "5.7.1 Service unavailable; Client host [127.0.0.7] blocked using"
                   " rbl.example.net; Listed for testing")),
    ("127.0.0.9", (554, "5.7.1 Service unavailable; Client host [127.0.0.9] blocked using"
                   " rbl.example.net")),
    ("127.0.0.8", (250, "2.1.5 Ok")),
    # The lookup fails for now: not listed, and a warning (RBL_LOG).
    ("127.0.0.10", (250, "2.1.5 Ok")),
]

# Lines of the rbl smtpd's maillog (after `postfix/rbl/smtpd[PID]: `), as
# Postfix logged them.
RBL_LOG = [
    "warning: 10.0.0.127.rbl.example.net: RBL lookup error: Host or domain name not found."
    " Name service error for name=10.0.0.127.rbl.example.net type=A: Host not found, try again",
]


# reject_unknown_reverse_client_hostname and reject_unknown_helo_hostname:
# the client address, its EHLO name and the RCPT reply, as Postfix gave it.
NAME_CASES = [
    # 127.0.0.7's PTR name does not resolve back: a reverse name is enough.
    ("127.0.0.7", "mx1.example.net", (250, "2.1.5 Ok")),
    # No PTR record.
    ("127.0.0.8", "mx1.example.net",
     (450, "4.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.8]")),
    # An MX record and no address.
    ("127.0.0.1", "example.net", (250, "2.1.5 Ok")),
    ("127.0.0.1", "nosuch.example.net",
     (450, "4.7.1 <nosuch.example.net>: Helo command rejected: Host not found")),
    # Exists, without MX or address records.
    ("127.0.0.1", "noaddr.example.net",
     (450, "4.7.1 <noaddr.example.net>: Helo command rejected: Host not found")),
    # Its address lookup fails for now: the same reply.
    ("127.0.0.1", "broken.example.net",
     (450, "4.7.1 <broken.example.net>: Helo command rejected: Host not found")),
    # An address literal is not looked up.
    ("127.0.0.1", "[127.0.0.1]", (250, "2.1.5 Ok")),
    # Outside the zone: the test's server refuses it.
    ("127.0.0.1", "nodots",
     (450, "4.7.1 <nodots>: Helo command rejected: Host not found")),
]


# rbl_reply_maps' reply for dbl.example.net: every variable of
# postconf(5)'s list, the conditional forms, and a literal $. Postfix
# gives its enhanced status code the reply code's class (5.7.9).
RBL_REPLY = ("$rbl_code 4.7.9 $rbl_class [$rbl_what] at $rbl_domain"
             " (${rbl_reason:no reason}${rbl_txt?, txt $rbl_txt}) $$5"
             " client=$client_address/$client_name/$reverse_client_name helo=$helo_name"
             " sender=$sender/$sender_name/$sender_domain"
             " rcpt=$recipient/$recipient_name/$recipient_domain")

# reject_rhsbl_*: client address, EHLO name, sender, recipient, and the
# RCPT reply (RBL_REPLY's), as Postfix gave it.
RHSBL_CASES = [
    # 127.0.0.1 is localhost (/etc/hosts).
    ("127.0.0.1", "clean.example.net", "sender@example.test", "sender@example.test",
     (554, "5.7.9 Client host [localhost] at dbl.example.net (, txt Client name listed) $5"
      " client=127.0.0.1/localhost/localhost helo=clean.example.net"
      " sender=sender@example.test/sender/example.test"
      " rcpt=sender@example.test/sender/example.test")),
    # 127.0.0.7's PTR name does not resolve back: only the reverse check
    # sees it.
    ("127.0.0.7", "clean.example.net", "sender@example.test", "sender@example.test",
     (554, "5.7.9 Unverified Client host [mx1.example.net] at dbl.example.net (no reason) $5"
      " client=127.0.0.7/unknown/mx1.example.net helo=clean.example.net"
      " sender=sender@example.test/sender/example.test"
      " rcpt=sender@example.test/sender/example.test")),
    ("127.0.0.8", "mx1.example.net", "sender@example.test", "sender@example.test",
     (554, "5.7.9 Helo command [mx1.example.net] at dbl.example.net (no reason) $5"
      " client=127.0.0.8/unknown/unknown helo=mx1.example.net"
      " sender=sender@example.test/sender/example.test"
      " rcpt=sender@example.test/sender/example.test")),
    ("127.0.0.8", "clean.example.net", "x@spam.example.net", "sender@example.test",
     (554, "5.7.9 Sender address [x@spam.example.net] at dbl.example.net"
      " (, txt Sender domain listed) $5 client=127.0.0.8/unknown/unknown"
      " helo=clean.example.net sender=x@spam.example.net/x/spam.example.net"
      " rcpt=sender@example.test/sender/example.test")),
    ("127.0.0.8", "clean.example.net", "sender@example.test", "u@rcpt.example.net",
     (554, "5.7.9 Recipient address [u@rcpt.example.net] at dbl.example.net (no reason) $5"
      " client=127.0.0.8/unknown/unknown helo=clean.example.net"
      " sender=sender@example.test/sender/example.test"
      " rcpt=u@rcpt.example.net/u/rcpt.example.net")),
    ("127.0.0.8", "clean.example.net", "sender@example.test", "sender@example.test",
     (250, "2.1.5 Ok")),
]


def rcpt_reply(port, source, helo="client.example", sender="sender@example.test",
               rcpt="sender@example.test"):
    """The reply of the smtpd at PORT to RCPT, from a client at SOURCE."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
        c.ehlo(helo)
        c.mail(sender)
        code, text = c.rcpt(rcpt)
    return (code, text.decode("utf-8", "replace"))


def rhsbl(inst):
    """The rhsbl smtpd's RCPT replies for RHSBL_CASES."""
    for source, helo, sender, rcpt, want in RHSBL_CASES:
        got = rcpt_reply(inst.rhsbl_port, source, helo, sender, rcpt)
        check(got == want, f"rhsbl: from {source}, EHLO {helo}, MAIL FROM:<{sender}>, "
              f"RCPT TO:<{rcpt}>: want {want}, got {got}")


# permit_dnswl_client and permit_rhswl_client: the client address, the
# recipient, and the RCPT reply, as Postfix gave it.
ALLOW_CASES = [
    # Listed by address.
    ("127.0.0.8", "sender@example.test", (250, "2.1.5 Ok")),
    # Listed by name (localhost).
    ("127.0.0.1", "sender@example.test", (250, "2.1.5 Ok")),
    ("127.0.0.7", "sender@example.test",
     (554, "5.7.1 <unknown[127.0.0.7]>: Client host rejected: Access denied")),
    # An allowlist does not open the relay: ignored wherever it would
    # (here: in the client restrictions, judged at RCPT).
    ("127.0.0.8", "u@nomx.example.net",
     (554, "5.7.1 <unknown[127.0.0.8]>: Client host rejected: Access denied")),
    # The allowlist lookup fails for now: the rejection that follows is
    # deferred (DEFER_IF_REJECT).
    ("127.0.0.9", "sender@example.test",
     (450, "4.7.1 <127.0.0.9>: Client host rejected: Service unavailable")),
]


# Lines of the allow smtpd's maillog (after `postfix/allow/smtpd[PID]: `),
# as Postfix logged them.
ALLOW_LOG = [
    "warning: 9.0.0.127.wl.example.net: RBL lookup error: Host or domain name not found."
    " Name service error for name=9.0.0.127.wl.example.net type=A: Host not found, try again",
    "NOQUEUE: reject: RCPT from unknown[127.0.0.9]: 450 4.7.1 <127.0.0.9>: Client host"
    " rejected: Service unavailable; from=<sender@example.test> to=<sender@example.test>"
    " proto=ESMTP helo=<client.example>",
]


def allowlists(inst):
    """The allow smtpd's RCPT replies for ALLOW_CASES."""
    for source, rcpt, want in ALLOW_CASES:
        got = rcpt_reply(inst.allow_port, source, rcpt=rcpt)
        check(got == want, f"allowlists: from {source}, RCPT TO:<{rcpt}>: want {want}, got {got}")
    # The failed lookup is a warning, the deferred rejection a reject line.
    logged(inst, "allow", ALLOW_LOG)


def logged(inst, service, lines):
    """Checks that postfix/SERVICE/smtpd logged each of LINES (Postfix's
    postlogd may write a line a moment after the reply)."""
    patterns = [re.compile(rf"postfix/{service}/smtpd\[\d+\]: " + re.escape(line) + "$", re.M)
                for line in lines]
    deadline = time.time() + 10
    while True:
        log = inst.maillog()
        found = [p.search(log) is not None for p in patterns]
        if all(found) or time.time() > deadline:
            break
        time.sleep(0.2)
    for line, ok in zip(lines, found):
        check(ok, f"{service} smtpd: the maillog has {line!r}")


def names(inst):
    """The names smtpd's RCPT replies for NAME_CASES."""
    for source, helo, want in NAME_CASES:
        got = rcpt_reply(inst.names_port, source, helo)
        check(got == want, f"names: from {source}, EHLO {helo}: want {want}, got {got}")


def unknown_clients(inst, port=None, cases=UNKNOWN_CLIENT_CASES, what="unknown clients"):
    """A smtpd's RCPT replies from client addresses: the client smtpd's
    for UNKNOWN_CLIENT_CASES (or PORT's for CASES)."""
    for source, want in cases:
        got = rcpt_reply(port or inst.client_port, source)
        check(got == want, f"{what}: from {source}: want {want}, got {got}")


# smtpd_peername_lookup = yes (the client smtpd), as Postfix logged it:
# /etc/hosts names 127.0.0.1 (before the DNS server's PTR record); a PTR
# name that does not resolve back is warned about and not used; no PTR
# record, no name and no warning.
CLIENT_NAME_LINES = [
    "connect from localhost[127.0.0.1]",
    "warning: hostname mx1.example.net does not resolve to address 127.0.0.7",
    "connect from unknown[127.0.0.7]",
    "connect from unknown[127.0.0.8]",
]


def client_names(inst):
    """The client smtpd's connect lines (and warnings) for the sessions of
    unknown_clients, after the connection test's own."""
    deadline = time.time() + 10
    while True:
        got = [re.sub(r"^.*postfix/client/smtpd\[\d+\]: ", "", line)
               for line in inst.maillog().splitlines()
               if "postfix/client/smtpd[" in line
               and ("connect from" in line or "warning:" in line)
               and "disconnect from" not in line]
        # Each distinct line once, in order (the first connection is the
        # test's own check that smtpd listens).
        seen = []
        for line in got:
            if line not in seen:
                seen.append(line)
        if seen == CLIENT_NAME_LINES or time.time() > deadline:
            break
        time.sleep(0.2)
    check(seen == CLIENT_NAME_LINES,
          f"client names: the connect lines are Postfix's {CLIENT_NAME_LINES}; got {seen}")


def unknown_domains(inst):
    """The strict smtpd's RCPT replies for UNKNOWN_DOMAIN_CASES."""
    for sender, rcpt, want in UNKNOWN_DOMAIN_CASES:
        got = rcpt_reply(inst.strict_port, "127.0.0.1", sender=sender, rcpt=rcpt)
        check(got == want, f"unknown domains: MAIL FROM:<{sender}> RCPT TO:<{rcpt}>: "
              f"want {want}, got {got}")


def status_fields(line):
    """relay, dsn, status and reason of a `to=` log line."""
    m = re.search(r"relay=([^,]+),.* dsn=([\d.]+), status=(\w+) \((.*)\)$", line or "")
    return m.groups() if m else (None, None, None, None)


def delivered(inst, servers, name, domain, want_address, want_relay_host, contacted=(),
              untouched=(), extra=None):
    """A scenario whose message must reach the server at want_address."""
    rcpt = f"user@{domain}"
    subject = f"mx test {name}"
    conns0, msgs0 = servers.snapshot()
    qid = inst.send(rcpt, subject)
    line = inst.wait_to_line(rcpt)
    conns, msgs = servers.snapshot()
    check(line is not None, f"{name}: the maillog has a to=<{rcpt}> line")
    relay, dsn, status, reason = status_fields(line)
    want_relay = f"{want_relay_host}[{want_address}]:{servers.port}"
    server = SERVERS[want_address].upper()
    check(relay == want_relay and dsn == "2.0.0" and status == "sent"
          and reason == f"250 2.0.0 Ok: queued as {server}",
          f"{name}: relay={want_relay}, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as "
          f"{server}); got: {line}")
    got = {a: msgs[a][len(msgs0[a]):] for a in SERVERS}
    check(got[want_address] == [("sender@example.test", [rcpt], subject)],
          f"{name}: {SERVERS[want_address]} ({want_address}) got the message from "
          f"<sender@example.test> to <{rcpt}> with Subject {subject!r}; got "
          f"{got[want_address]}")
    others = {a: m for a, m in got.items() if a != want_address and m}
    check(not others, f"{name}: no other server got a message ({others})")
    for a in contacted:
        check(conns[a] > conns0[a], f"{name}: {SERVERS[a]} ({a}) was tried first")
    for a in untouched:
        check(conns[a] == conns0[a],
              f"{name}: {SERVERS[a]} ({a}) was not contacted ({conns[a] - conns0[a]} times)")
    if extra:
        extra(qid, inst.maillog())


def not_sent(inst, servers, name, domain, want_dsn, want_status, want_reason, bounce=False,
             warning=False):
    """A scenario whose message no server may get: relay=none, the dsn,
    status and reason Postfix logs; `bounce`: the sender's notification
    arrives; `warning`: smtp(8)'s warning that no MX host has an address."""
    rcpt = f"user@{domain}"
    _, msgs0 = servers.snapshot()
    inst.send(rcpt, f"mx test {name}")
    line = inst.wait_to_line(rcpt)
    relay, dsn, status, reason = status_fields(line)
    check(relay == "none" and dsn == want_dsn and status == want_status,
          f"{name}: relay=none, dsn={want_dsn}, status={want_status}; got: {line}")
    check(reason == want_reason, f"{name}: the reason is Postfix's ({want_reason}); "
          f"got ({reason})")
    if bounce:
        deadline = time.time() + 20
        while time.time() < deadline and not any(domain in m for m in inst.sender_mail()):
            time.sleep(0.1)
        bounces = [m for m in inst.sender_mail() if rcpt in m]
        check(len(bounces) == 1 and want_reason.split(". ")[0] in bounces[0]
              and f"Status: {want_dsn}" in bounces[0],
              f"{name}: the sender gets a notification with the reason and Status: {want_dsn}")
    if warning:
        want = f"warning: no MX host for {domain} has a valid address record"
        check(re.search(r"/smtp\[\d+\]: " + re.escape(want) + "$", inst.maillog(), re.M),
              f"{name}: smtp logs '{want}' as Postfix does")
    _, msgs = servers.snapshot()
    check(msgs == msgs0, f"{name}: no server got a message")


def main():
    keep = "--keep" in sys.argv[1:]
    if SUBJECT == "postfix" and os.geteuid() != 0:
        raise SystemExit("SUBJECT=postfix needs root (a private Postfix, a mount namespace)")
    if SUBJECT == "postfix":
        dns_address, port = "127.0.0.153", 53
    else:
        dns_address = "127.0.0.1"
        port = dns_port(dns_address)
    dns = Dns(dns_address, port)
    servers = Servers()
    tmp = tempfile.mkdtemp(prefix="mx-")
    inst = None
    try:
        dns.start()
        servers.start()
        inst = Instance(tmp, f"{dns_address}:{port}", servers.port)
        inst.start()
        sport = servers.port
        print(f"mx ({SUBJECT}): DNS on {dns_address}:{port}, SMTP servers on port {sport}, "
              f"instance in {tmp}")

        delivered(inst, servers, "preference", "example.net", "127.0.0.2", "mx1.example.net",
                  untouched=["127.0.0.3"])
        check(dns.asked("example.net", "MX"),
              "preference: the MX query went to the test's DNS server")

        def connect_line(qid, log):
            want = f"connect to dead.example.net[127.0.0.5]:{sport}: Connection refused"
            lines = [l for l in log.splitlines() if "127.0.0.5" in l]
            check(any(re.search(r"/smtp\[\d+\]: " + re.escape(want) + "$", l) for l in lines),
                  f"fallback: the skipped host is logged as Postfix does: "
                  f"'postfix/smtp[PID]: {want}'; got {lines}")
        delivered(inst, servers, "fallback", "fallback.example.net", "127.0.0.3",
                  "mx2.example.net", extra=connect_line)

        def refused_line(qid, log):
            want = (f"{qid}: host busy.example.net[127.0.0.6] refused to talk to me: "
                    f"{BUSY_GREETING}")
            lines = [l for l in log.splitlines() if "127.0.0.6" in l]
            check(any(re.search(r"/smtp\[\d+\]: " + re.escape(want) + "$", l) for l in lines),
                  f"greeting: the refusing host is logged as Postfix does: "
                  f"'postfix/smtp[PID]: {want}'; got {lines}")
        delivered(inst, servers, "greeting", "greeting.example.net", "127.0.0.3",
                  "mx2.example.net", contacted=["127.0.0.6"], extra=refused_line)

        delivered(inst, servers, "no MX", "nomx.example.net", "127.0.0.4", "nomx.example.net")
        check(dns.asked("nomx.example.net", "MX"), "no MX: the MX query was made first")

        not_sent(inst, servers, "NXDOMAIN", "nosuch.example.net", "5.4.4", "bounced",
                 "Host or domain name not found. Name service error for "
                 "name=nosuch.example.net type=A: Host not found", bounce=True)
        # The domain's A record must not be used when the MX query failed.
        not_sent(inst, servers, "SERVFAIL", "servfail.example.net", "4.4.3", "deferred",
                 "Host or domain name not found. Name service error for "
                 "name=servfail.example.net type=MX: Host not found, try again")
        not_sent(inst, servers, "MX address SERVFAIL", "mxservfail.example.net", "4.4.3",
                 "deferred", "Host or domain name not found. Name service error for "
                 "name=broken.example.net type=A: Host not found, try again", warning=True)
        not_sent(inst, servers, "MX host without address", "mxnoaddr.example.net", "5.4.4",
                 "bounced", "Host or domain name not found. Name service error for "
                 "name=noaddr.example.net type=A: Host found but no data record of requested "
                 "type", warning=True)
        unknown_domains(inst)
        unknown_clients(inst)
        client_names(inst)
        unknown_clients(inst, inst.rbl_port, RBL_CASES, "blocklist")
        logged(inst, "rbl", RBL_LOG)
        names(inst)
        rhsbl(inst)
        allowlists(inst)
    finally:
        if inst is not None:
            inst.stop()
        servers.stop()
        dns.stop()
    failed = len(check.failures)
    if failed or keep:
        print(f"mx ({SUBJECT}): {failed} failed; kept {tmp} (maillog: {tmp}/maillog)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"mx ({SUBJECT}): all passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
