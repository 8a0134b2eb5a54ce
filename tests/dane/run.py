#!/usr/bin/env python3
"""DANE in the smtp(8) client (RFC 7672), end to end, against a DNS server
and SMTP servers of the test's own.

The instance has smtp_tls_security_level = dane, smtp_dns_support_level =
dnssec, smtp_host_lookup = dns, inet_protocols = ipv4, smtp_tls_loglevel
= 1, relayhost empty. Expected behaviour comes from RFC 7672, postconf(5)
on this machine (smtp_tls_security_level, smtp_dns_support_level,
smtp_tls_dane_insecure_mx_policy, dnssec_probe) and Debian's Postfix
3.7.11, which passes every check here with SUBJECT=postfix (2025-11-23).
What it logged (the SMTP servers' port as PORT; TLS lines compared up to
the `]:PORT:`, the protocol and cipher after it are not):

  * a usable DANE-EE (3 1 1, 3 0 1) or DANE-TA (2 0 1) match, delivered:
      postfix/smtp: Verified TLS connection established to
      ee.example.net[127.0.0.2]:PORT: TLSv1.3 with cipher ...
  * mismatch (3 1 1, wrong digest): TLS is set up, then dropped:
      postfix/smtp: server certificate verification failed for
      mismatch.example.net[127.0.0.4]:PORT: num=65:no matching DANE TLSA records
      postfix/smtp: Untrusted TLS connection established to
      mismatch.example.net[127.0.0.4]:PORT: ...
      relay=mismatch.example.net[127.0.0.4]:PORT, dsn=4.7.5,
      status=deferred (Server certificate not verified)
  * a secure NODATA for the TLSA query: `may`, delivered, `Untrusted TLS
    connection established to notlsa.example.net[127.0.0.5]:PORT`; to a
    server without STARTTLS in the clear (no-tlsa-plain), with no TLS line
  * insecure (no AD on MX nor A): the TLSA query is not even made
    (smtp_tls_dane_insecure_mx_policy = dane only matters for a secure
    host under an insecure MX); delivered, `Untrusted TLS connection ...`
  * usable TLSA, no STARTTLS offered: no TLS line, then
      relay=plain.example.net[127.0.0.7]:PORT, dsn=4.7.4, status=deferred
      (TLS is required, but was not offered by host plain.example.net[127.0.0.7])
  * TLSA query SERVFAIL: no connection; the lookup warning twice in a row
    (two lookups, each tried twice by the resolver with attempts:2; the
    test counts a line repeated at once as one), then
      postfix/smtp: warning: DANE TLSA lookup problem: Host or domain name
      not found. Name service error for name=_PORT._tcp.servfail.example.net
      type=TLSA: Host not found, try again
      postfix/smtp: warning: TLS policy lookup for
      tlsa-servfail.example.net/servfail.example.net: TLSA lookup error for
      servfail.example.net:PORT
      relay=none, dsn=4.7.5, status=deferred (TLSA lookup error for
      servfail.example.net:PORT)
  * only PKIX-EE (1 1 1): a warning with the record (digest in upper-case
    hex), then mandatory unauthenticated TLS (`encrypt`): delivered with
    `Untrusted TLS connection established to pkix.example.net[...]`;
    without STARTTLS (unusable-plain) deferred like no-starttls:
      postfix/smtp: warning: _PORT._tcp.pkix.example.net unsupported TLSA
      certificate usage: 1 1 1 6BE2837EE9847438ADD44C59B524DFFAEF3BCA76...
  * a transport with `-o smtp_dns_support_level=` (empty: DNS enabled, no
    DNSSEC) and `-o syslog_name=postfix/nodnssec` (which Postfix logs as
    `postfix/nodnssec/smtp`): downgraded to `may`, no TLSA query, delivered:
      postfix/nodnssec/smtp: warning: dnssec-off.example.net: dane
      configured with dnssec lookups disabled
      postfix/nodnssec/smtp: Untrusted TLS connection established to
      off.example.net[127.0.0.11]:PORT: ...
    Its MX query goes without the DO bit, yet the MX host's A query has it
    (not checked here).
  * dane-only (smtp_tls_policy_maps, texthash:): a 3 1 1 match is
    delivered like dane (`Verified TLS connection established to
    only-ee.example.net[127.0.0.14]:PORT`). Anything short of DANE defers
    before connecting: relay=none, dsn=4.7.5, the reason in a warning too:
      - secure NODATA:
        postfix/smtp: warning: TLS policy lookup for
        dane-only-notlsa.example.net/only-notlsa.example.net: no TLSA records found
        status=deferred (no TLSA records found)
      - only 1 1 1: the unsupported-usage warning as for `unusable`, then
        postfix/smtp: warning: TLS policy lookup for
        dane-only-unusable.example.net/only-pkix.example.net: TLSA records unusable
        status=deferred (TLSA records unusable)
      - a transport daneonlyoff (`-o smtp_dns_support_level=` `-o
        smtp_tls_security_level=dane-only`, syslog_name postfix/daneonlyoff);
        no TLSA query, the MX query without DO:
        postfix/daneonlyoff/smtp: warning: dane-only-off.example.net:
        dane-only configured with dnssec lookups disabled
        postfix/daneonlyoff/smtp: warning: TLS policy lookup for
        dane-only-off.example.net/only-off.example.net: client TLS
        configuration problem
        status=deferred (client TLS configuration problem)
      - an unsigned MX for a signed host with a matching TLSA: no TLSA query,
        postfix/smtp: warning: TLS policy lookup for
        only.insecure.example.net/only-secure.example.net: non DNSSEC destination
        status=deferred (non DNSSEC destination)
  * dane, an unsigned MX for a signed host with a matching TLSA record
    (smtp_tls_dane_insecure_mx_policy = dane by default): the TLSA query is
    made and the mail delivered, but the TLS line says `Trusted`, not
    `Verified`: `Trusted TLS connection established to
    secure.example.net[127.0.0.19]:PORT`.
  * two MX hosts, the first (preference 10) with a mismatching TLSA
    record: as for mismatch, then the queue ID and the reason alone, then
    the second (20) gets it:
      postfix/smtp: server certificate verification failed for
      first-mismatch.example.net[127.0.0.20]:PORT: num=65:no matching DANE TLSA records
      postfix/smtp: Untrusted TLS connection established to
      first-mismatch.example.net[127.0.0.20]:PORT: ...
      postfix/smtp: QID: Server certificate not verified
      postfix/smtp: Verified TLS connection established to
      second-ee.example.net[127.0.0.21]:PORT: ...
      relay=second-ee.example.net[127.0.0.21]:PORT, dsn=2.0.0, status=sent
  * DANE-TA (2 0 1 of the CA) with the EE's name (ta.example.net) not the
    MX host's (ta-other.example.net): the name is checked, deferred:
      postfix/smtp: server certificate verification failed for
      ta-other.example.net[127.0.0.22]:PORT: num=62:hostname mismatch
      postfix/smtp: Untrusted TLS connection established to ...
      relay=ta-other.example.net[127.0.0.22]:PORT, dsn=4.7.5,
      status=deferred (Server certificate not verified)
  * DANE-EE 3 1 1 of a self-signed X.509 v1 certificate: delivered,
    `Verified TLS connection established to ee-v1.example.net[127.0.0.23]`.
  * dnssec_probe (ns:.): no warning at start; the first smtp process whose
    first DNSSEC lookup (here the insecure scenario's MX) comes back
    without AD sends one `. NS` query with DO; the answer has no AD, so:
      postfix/smtp: warning: DNSSEC validation may be unavailable
      postfix/smtp: warning: reason: dnssec_probe 'ns:.' received a
      response that is not DNSSEC validated
    (with the probe refused, the reason was `dnssec_probe 'ns:.' received
    no response: Host or domain name not found. Name service error for
    name=. type=NS: Host not found, try again`). DANE works after it all
    the same: the AD bit of each later answer counts.
  Every DNSSEC lookup of smtp(8) (MX, A, TLSA) sets the DO bit.

Postfix trusts the AD bit of its resolver; glibc passes it on only with
`options trust-ad`. With SUBJECT=postfix (root) the script starts Postfix
inside a mount namespace of its own (unshare(1), as tests/mx does) whose
/etc/resolv.conf is a bind mount saying `nameserver 127.0.0.153` and
`options trust-ad`; the DNS server is on 127.0.0.153:53. For Rostfix it is
on 127.0.0.1:<free port>, named by `rostfix_dns_servers`, whose AD bit
Rostfix trusts.

What runs:
  * a DNS server (python3-dnslib, in threads, UDP and TCP) for example.net
    (make_zone): each recipient domain has one MX host; the names under
    insecure.example.net are unsigned, the rest signed: their answers,
    NODATA and NXDOMAIN included, carry the AD bit when the query has DO
    (or AD) set; SERVFAIL for the TLSA query of servfail.example.net;
  * SMTP servers (python3-aiosmtpd) on 127.0.0.2-23 at one common free
    port (smtp_tcp_port), with STARTTLS and a certificate made with
    openssl (a self-signed `ee`, a self-signed X.509 v1 `ee-v1`, or `ta`
    issued by a private CA and sent with the CA's certificate) or without
    STARTTLS (plain, pkix-plain, notlsa-plain);
  * a private instance (tests/common.py; tests/mx/run.py's Instance),
    transports `nodnssec` and `daneonlyoff` (transport_maps for
    dnssec-off.example.net, dane-only-off.example.net) and
    smtp_tls_policy_maps = texthash:etc/tls_policy, `DOMAIN dane-only` for
    the domains of DANE_ONLY.

Scenarios (one message each, checked in turn: the to=<...> line's relay,
dsn, status, reason; the client's other lines and any warning; which
server got the message and whether over TLS; whether the server was
contacted; the DO bit on the MX query; whether the TLSA query was made):

  insecure        unsigned MX and A, a wrong TLSA record: sent (Untrusted)
  dane-ee         TLSA 3 1 1 SHA-256 of ee's SubjectPublicKeyInfo: sent (Verified)
  dane-ee-cert    TLSA 3 0 1 SHA-256 of ee's certificate: sent (Verified)
  mismatch        TLSA 3 1 1, wrong digest: deferred 4.7.5
  no-tlsa         secure NODATA: sent (Untrusted)
  no-starttls     TLSA 3 1 1, no STARTTLS: deferred 4.7.4, not sent in the clear
  tlsa-servfail   deferred 4.7.5, relay=none, the server not contacted
  dane-ta         TLSA 2 0 1 SHA-256 of the CA's certificate, the EE's
                  subjectAltName the MX host: sent (Verified)
  unusable        only TLSA 1 1 1: sent (Untrusted), with the warning
  unusable-plain  only TLSA 1 1 1, no STARTTLS: deferred 4.7.4
  no-tlsa-plain   secure NODATA, no STARTTLS: sent in the clear
  dnssec-off      the nodnssec transport: sent (Untrusted), with the warning
  dane-only       dane-only, TLSA 3 1 1: sent (Verified)
  dane-only-no-tlsa     dane-only, secure NODATA: deferred 4.7.5, not contacted
  dane-only-unusable    dane-only, only 1 1 1: deferred 4.7.5, not contacted
  dane-only-dnssec-off  the daneonlyoff transport: deferred 4.7.5, not contacted
  dane-only-insecure-mx dane-only, unsigned MX, signed host and TLSA:
                  deferred 4.7.5, not contacted, no TLSA query
  insecure-mx-secure-host  dane, unsigned MX, signed host and matching
                  TLSA: sent (Trusted)
  two-mx          dane, MX 10 mismatch, MX 20 3 1 1: the first tried, the
                  second gets it (Verified)
  dane-ta-name    TLSA 2 0 1 of the CA, the EE for another name: deferred 4.7.5
  dane-ee-v1      TLSA 3 1 1 of an X.509 v1 self-signed certificate: sent (Verified)
and then: one probe query and its two warnings in the whole maillog.

Usage: tests/dane/run.py [-v] [--keep]   (SUBJECT=postfix: Debian's Postfix, root)
Needs python3-dnslib, python3-aiosmtpd (scripts/deps) and openssl. Exit 1
on a failed check; -v shows each scenario's log lines and DNS queries;
--keep keeps the temporary directory (kept anyway on failure).
"""

import email
import hashlib
import os
import pwd
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TESTS)
import common  # noqa: E402


mx = common.load_test("mx")
SUBJECT, BIN = common.subject()
check = common.Checks()
VERBOSE = False


def say(*lines):
    if VERBOSE:
        for line in lines:
            print("      " + line)


# ---------------------------------------------------------------- certificates

def openssl(*args, input=None):
    r = subprocess.run(["openssl", *args], input=input, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"openssl {' '.join(args)} failed: "
                         + r.stderr.decode("utf-8", "replace"))
    return r.stdout


class Certs:
    """The servers' keys and certificates, made with the openssl command in
    DIR: `ee`, a self-signed certificate (DANE-EE); `ca`, a private CA,
    and `ta`, a certificate it issued for ta.example.net (DANE-TA),
    presented with the CA's certificate after it (ta-chain.pem); `ee-v1`,
    a self-signed X.509 v1 certificate (no extensions)."""

    def __init__(self, dir):
        self.dir = dir
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        openssl("req", "-x509", *ec, "-keyout", self.path("ee.key"), "-out", self.path("ee.pem"),
                "-days", "2", "-subj", "/CN=ee.example.net")
        openssl("req", "-x509", *ec, "-keyout", self.path("ca.key"), "-out", self.path("ca.pem"),
                "-days", "2", "-subj", "/CN=Rostfix DANE test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-new", *ec, "-keyout", self.path("ta.key"), "-out", self.path("ta.csr"),
                "-subj", "/CN=ta.example.net")
        with open(self.path("ta.ext"), "w") as f:
            f.write("subjectAltName = DNS:ta.example.net\nbasicConstraints = CA:FALSE\n"
                    "extendedKeyUsage = serverAuth\n")
        openssl("x509", "-req", "-in", self.path("ta.csr"), "-CA", self.path("ca.pem"),
                "-CAkey", self.path("ca.key"), "-CAcreateserial", "-days", "2",
                "-extfile", self.path("ta.ext"), "-out", self.path("ta.pem"))
        with open(self.path("ta-chain.pem"), "w") as f:
            for n in ("ta.pem", "ca.pem"):
                with open(self.path(n)) as g:
                    f.write(g.read())
        # An X.509 v1 self-signed certificate: `x509 -req` without extensions.
        openssl("req", "-new", *ec, "-keyout", self.path("ee-v1.key"),
                "-out", self.path("ee-v1.csr"), "-subj", "/CN=ee-v1.example.net")
        openssl("x509", "-req", "-in", self.path("ee-v1.csr"), "-signkey",
                self.path("ee-v1.key"), "-days", "2", "-out", self.path("ee-v1.pem"))
        text = openssl("x509", "-in", self.path("ee-v1.pem"), "-noout", "-text").decode()
        if "Version: 1 (0x0)" not in text:
            raise SystemExit("openssl x509 -req made no X.509 v1 certificate")

    def path(self, name):
        return os.path.join(self.dir, name)

    def cert_sha256(self, name):
        """SHA-256 of the certificate's DER (TLSA selector 0, type 1)."""
        return hashlib.sha256(openssl("x509", "-in", self.path(name + ".pem"),
                                      "-outform", "DER")).digest()

    def spki_sha256(self, name):
        """SHA-256 of its SubjectPublicKeyInfo (TLSA selector 1, type 1)."""
        pem = openssl("x509", "-in", self.path(name + ".pem"), "-noout", "-pubkey")
        return hashlib.sha256(openssl("pkey", "-pubin", "-outform", "DER", input=pem)).digest()

    def context(self, name):
        """A server-side ssl context presenting NAME's certificate (and the
        CA's after `ta`'s)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        chain = "ta-chain.pem" if name == "ta" else name + ".pem"
        ctx.load_cert_chain(self.path(chain), self.path(name + ".key"))
        return ctx


# ---------------------------------------------------------------- DNS

ZONE_APEX = "example.net"
# The unsigned part of the zone: no AD bit on its answers.
INSECURE = "insecure.example.net"


def make_zone(port, certs):
    """The zone, once the SMTP servers' port (TLSA owner names) and the
    certificates' digests are known. Values: a list of records, or
    "SERVFAIL"; a name without the type gets NODATA."""
    ee_spki = certs.spki_sha256("ee")
    ee_cert = certs.cert_sha256("ee")
    wrong = hashlib.sha256(b"not the server's key").digest()

    def host(name, address, tlsa=None):
        zone[name] = {"A": [address]}
        if tlsa is not None:
            zone[f"_{port}._tcp.{name}"] = {"TLSA": tlsa}
        else:
            # The name exists (an empty non-terminal would do too): NODATA.
            zone[f"_{port}._tcp.{name}"] = {}

    zone = {}
    for domain, mxhost in DOMAINS.items():
        zone[domain] = {"MX": mxhost if isinstance(mxhost, list) else [(10, mxhost)]}
    host("ee.example.net", "127.0.0.2", [(3, 1, 1, ee_spki)])
    host("ee-cert.example.net", "127.0.0.3", [(3, 0, 1, ee_cert)])
    host("mismatch.example.net", "127.0.0.4", [(3, 1, 1, wrong)])
    host("notlsa.example.net", "127.0.0.5")
    host("mx.insecure.example.net", "127.0.0.6", [(3, 1, 1, wrong)])
    host("plain.example.net", "127.0.0.7", [(3, 1, 1, ee_spki)])
    host("servfail.example.net", "127.0.0.8", "SERVFAIL")
    host("ta.example.net", "127.0.0.9", [(2, 0, 1, certs.cert_sha256("ca"))])
    host("pkix.example.net", "127.0.0.10", [(1, 1, 1, ee_spki)])
    host("off.example.net", "127.0.0.11", [(3, 1, 1, wrong)])
    host("pkix-plain.example.net", "127.0.0.12", [(1, 1, 1, ee_spki)])
    host("notlsa-plain.example.net", "127.0.0.13")
    host("only-ee.example.net", "127.0.0.14", [(3, 1, 1, ee_spki)])
    host("only-notlsa.example.net", "127.0.0.15")
    host("only-pkix.example.net", "127.0.0.16", [(1, 1, 1, ee_spki)])
    host("only-off.example.net", "127.0.0.17", [(3, 1, 1, ee_spki)])
    host("only-secure.example.net", "127.0.0.18", [(3, 1, 1, ee_spki)])
    host("secure.example.net", "127.0.0.19", [(3, 1, 1, ee_spki)])
    host("first-mismatch.example.net", "127.0.0.20", [(3, 1, 1, wrong)])
    host("second-ee.example.net", "127.0.0.21", [(3, 1, 1, ee_spki)])
    host("ta-other.example.net", "127.0.0.22", [(2, 0, 1, certs.cert_sha256("ca"))])
    host("ee-v1.example.net", "127.0.0.23", [(3, 1, 1, certs.spki_sha256("ee-v1"))])
    zone["ns.example.net"] = {"A": ["127.0.0.1"]}
    return zone


# recipient domain -> its only MX host, or its MX records [(preference, host)]
DOMAINS = {
    "dane-ee.example.net": "ee.example.net",
    "dane-ee-cert.example.net": "ee-cert.example.net",
    "mismatch.dane.example.net": "mismatch.example.net",
    "no-tlsa.example.net": "notlsa.example.net",
    "d.insecure.example.net": "mx.insecure.example.net",
    "no-starttls.example.net": "plain.example.net",
    "tlsa-servfail.example.net": "servfail.example.net",
    "dane-ta.example.net": "ta.example.net",
    "unusable.example.net": "pkix.example.net",
    "dnssec-off.example.net": "off.example.net",
    "unusable-plain.example.net": "pkix-plain.example.net",
    "no-tlsa-plain.example.net": "notlsa-plain.example.net",
    "dane-only.example.net": "only-ee.example.net",
    "dane-only-notlsa.example.net": "only-notlsa.example.net",
    "dane-only-unusable.example.net": "only-pkix.example.net",
    "dane-only-off.example.net": "only-off.example.net",
    "only.insecure.example.net": "only-secure.example.net",
    "dane.insecure.example.net": "secure.example.net",
    "two-mx.example.net": [(10, "first-mismatch.example.net"), (20, "second-ee.example.net")],
    "dane-ta-name.example.net": "ta-other.example.net",
    "dane-ee-v1.example.net": "ee-v1.example.net",
}

# smtp_tls_policy_maps (texthash:): dane-only for these next-hop domains
DANE_ONLY = ["dane-only.example.net", "dane-only-notlsa.example.net",
             "dane-only-unusable.example.net", "only.insecure.example.net"]


class Dns:
    """An authoritative-and-validating stand-in for a recursive resolver,
    on UDP and TCP: answers for names in the signed part of ZONE carry the
    AD bit (when the query has DO or AD set, as a validating resolver
    does), NODATA and NXDOMAIN included; names under INSECURE never do.
    The root's NS query (Postfix's dnssec_probe) gets an answer without
    AD."""

    def __init__(self, address, port, zone):
        self.address, self.port, self.zone = address, port, zone
        self.queries = []           # (name, type, DO bit)
        self.lock = threading.Lock()
        self.servers = []

    def start(self):
        dnslib = mx.debian_import("dnslib")
        import dnslib.server
        from dnslib import A, EDNS0, MX, NS, QTYPE, RCODE, RR, SOA, TLSA
        dns = self

        def soa(apex):
            return RR(apex, QTYPE.SOA, ttl=60,
                      rdata=SOA("ns.example.net", "hostmaster.example.net",
                                (1, 3600, 600, 86400, 60)))

        class Resolver(dnslib.server.BaseResolver):
            def resolve(self, request, handler):
                reply = request.reply()
                name = str(request.q.qname).rstrip(".").lower()
                qtype = QTYPE.get(request.q.qtype)
                opt = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
                do = bool(opt and opt[0].ttl & 0x8000)
                with dns.lock:
                    dns.queries.append((name, qtype, do))
                # The reply's flags start as a copy of the query's (AD, CD).
                reply.header.ad = 0
                if opt:
                    reply.add_ar(EDNS0(udp_len=1232, flags="do" if do else ""))
                wants_ad = do or request.header.ad
                if name == "":              # the probe: an answer, not validated
                    if qtype == "NS":
                        reply.add_answer(RR(".", QTYPE.NS, ttl=60, rdata=NS("ns.example.net")))
                    return reply
                if name != ZONE_APEX and not name.endswith("." + ZONE_APEX):
                    reply.header.rcode = RCODE.REFUSED
                    return reply
                insecure = name == INSECURE or name.endswith("." + INSECURE)
                apex = INSECURE if insecure else ZONE_APEX
                records = dns.zone.get(name)
                if records is None:
                    reply.header.rcode = RCODE.NXDOMAIN
                    reply.add_auth(soa(apex))
                    reply.header.ad = int(wants_ad and not insecure)
                    return reply
                found = records.get(qtype, [])
                if found == "SERVFAIL":
                    reply.header.rcode = RCODE.SERVFAIL
                    return reply
                for value in found:
                    if qtype == "MX":
                        rdata = MX(value[1], value[0])
                    elif qtype == "TLSA":
                        rdata = TLSA(*value)
                    else:
                        rdata = A(value)
                    reply.add_answer(RR(name, getattr(QTYPE, qtype), ttl=60, rdata=rdata))
                if not found:
                    reply.add_auth(soa(apex))     # NOERROR, no data
                reply.header.ad = int(wants_ad and not insecure)
                return reply

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

    def mark(self):
        with self.lock:
            return len(self.queries)

    def since(self, mark):
        with self.lock:
            return list(self.queries[mark:])


# ---------------------------------------------------------------- SMTP servers

# address -> (the server's name, the certificate it presents or None: no STARTTLS)
SERVERS = {
    "127.0.0.2": ("ee", "ee"),
    "127.0.0.3": ("ee-cert", "ee"),
    "127.0.0.4": ("mismatch", "ee"),
    "127.0.0.5": ("notlsa", "ee"),
    "127.0.0.6": ("insecure", "ee"),
    "127.0.0.7": ("plain", None),
    "127.0.0.8": ("servfail", "ee"),
    "127.0.0.9": ("ta", "ta"),
    "127.0.0.10": ("pkix", "ee"),
    "127.0.0.11": ("off", "ee"),
    "127.0.0.12": ("pkix-plain", None),
    "127.0.0.13": ("notlsa-plain", None),
    "127.0.0.14": ("only-ee", "ee"),
    "127.0.0.15": ("only-notlsa", "ee"),
    "127.0.0.16": ("only-pkix", "ee"),
    "127.0.0.17": ("only-off", "ee"),
    "127.0.0.18": ("only-secure", "ee"),
    "127.0.0.19": ("secure", "ee"),
    "127.0.0.20": ("first-mismatch", "ee"),
    "127.0.0.21": ("second-ee", "ee"),
    "127.0.0.22": ("ta-other", "ta"),
    "127.0.0.23": ("ee-v1", "ee-v1"),
}


class Servers:
    """aiosmtpd on each address of SERVERS at one port, recording the
    connections and the messages (and whether each came over TLS)."""

    def __init__(self, certs):
        self.certs = certs
        self.port = None
        self.connections = {a: 0 for a in SERVERS}
        self.messages = {a: [] for a in SERVERS}   # (mail_from, rcpt_tos, subject, tls)
        self.lock = threading.Lock()
        self.armed = False
        self.controllers = []

    def start(self):
        mx.debian_import("aiosmtpd")
        import logging
        import aiosmtpd.controller
        import aiosmtpd.smtp
        # A client that aborts the handshake (DANE failure) is no error here.
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
        servers = self

        class Handler:
            def __init__(self, address):
                self.address = address

            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content or b"")
                with servers.lock:
                    servers.messages[self.address].append(
                        (envelope.mail_from, list(envelope.rcpt_tos), msg.get("Subject", ""),
                         session.ssl is not None))
                return f"250 2.0.0 Ok: queued as {SERVERS[self.address][0].upper()}"


        class Server(aiosmtpd.smtp.SMTP):
            def connection_made(self, transport):
                super().connection_made(transport)
                if servers.armed and self._original_transport is None:
                    with servers.lock:
                        servers.connections[self.event_handler.address] += 1

        class Controller(aiosmtpd.controller.Controller):
            def factory(self):
                return Server(self.handler, **self.SMTP_kwargs)

        for _ in range(20):
            port = common.free_port()
            started = []
            try:
                for address, (name, cert) in SERVERS.items():
                    ctx = self.certs.context(cert) if cert else None
                    c = Controller(Handler(address), hostname=address, port=port,
                                   server_hostname=f"{name}.example.net", ident="ESMTP test",
                                   tls_context=ctx)
                    c.start()
                    started.append(c)
            except (OSError, RuntimeError, TimeoutError):
                for c in started:
                    c.stop()
                continue
            self.port, self.controllers = port, started
            self.armed = True
            return
        raise SystemExit("no port free on 127.0.0.2-23 for the SMTP servers")

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

class Instance(mx.Instance):
    """tests/mx's instance (its postfix(), stop(), maillog(),
    wait_to_line()) with this test's main.cf and master.cf."""

    def __init__(self, tmp, dns_server, smtp_port):
        self.dir = tmp
        self.etc = os.path.join(tmp, "etc")
        self.port = common.free_port()
        self.started = False
        owner, uid, gid = common.users()
        os.chmod(tmp, 0o755)
        for d in ("etc", "queue", "data"):
            os.mkdir(os.path.join(tmp, d), 0o755)
        if os.geteuid() == 0:
            o = pwd.getpwnam(owner)
            os.chown(os.path.join(tmp, "data"), o.pw_uid, o.pw_gid)
        dns_line = ""
        if SUBJECT == "rostfix":
            dns_line = f"rostfix_dns_servers = {dns_server}\n"
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# Written by tests/dane/run.py: a private instance on loopback.\n"
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
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
smtp_tls_loglevel = 1
smtp_tcp_port = {smtp_port}
transport_maps = inline:{{ {{dnssec-off.example.net = nodnssec:}},
    {{dane-only-off.example.net = daneonlyoff:}} }}
smtp_tls_policy_maps = texthash:{self.etc}/tls_policy
{dns_line}""")
        with open(os.path.join(self.etc, "tls_policy"), "w") as f:
            f.writelines(f"{d} dane-only\n" for d in DANE_ONLY)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(common.MASTER_CF.format(port=self.port)
                    + "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"
                    "nodnssec  unix  -       -       n       -       -       smtp\n"
                    "  -o syslog_name=postfix/nodnssec\n"
                    "  -o smtp_dns_support_level=\n"
                    "daneonlyoff unix -     -       n       -       -       smtp\n"
                    "  -o syslog_name=postfix/daneonlyoff\n"
                    "  -o smtp_dns_support_level=\n"
                    "  -o smtp_tls_security_level=dane-only\n")
        # Postfix's resolver, in its own mount namespace (SUBJECT=postfix):
        # glibc passes the AD bit on only with trust-ad.
        self.resolv = os.path.join(tmp, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write(f"nameserver {dns_server.split(':')[0]}\n"
                    "options trust-ad attempts:2 timeout:2\n")
        past = time.time() - 3600
        for n in os.listdir(self.etc):
            os.utime(os.path.join(self.etc, n), (past, past))

    def start(self):
        self.started = True
        r = self.postfix("start")
        if r.returncode != 0:
            raise SystemExit(f"postfix start exited {r.returncode}: {r.stdout}{r.stderr}")
        if not common.wait_listening(self.port, 20):
            raise SystemExit(f"nothing listens on 127.0.0.1:{self.port}")

    def send(self, rcpt, subject):
        """Submits one message over SMTP; its queue ID (from the 250 reply)."""
        body = (f"From: sender@example.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
                f"Message-Id: <{subject.replace(' ', '.')}@example.test>\r\n\r\n"
                "A message of tests/dane/run.py.\r\n")
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as c:
            c.ehlo("client.example")
            c.mail("sender@example.test")
            code, text = c.rcpt(rcpt)
            if code != 250:
                raise SystemExit(f"RCPT TO:<{rcpt}> refused: {code} {text!r}")
            code, text = c.data(body.encode())
        m = re.search(r"queued as (\S+)", text.decode("utf-8", "replace"))
        return m.group(1) if m else None


# ---------------------------------------------------------------- scenarios

LOG_LINE = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ (\S+?)\[\d+\]: (.*)$")

# Postfix's dnssec_probe (`ns:.`), made once by the smtp process whose first
# DNSSEC lookup came back without AD (the insecure scenario, run first); the
# root's NS answer has no AD bit. Checked in the whole maillog.
PROBE_WARNINGS = [
    "postfix/smtp: warning: DNSSEC validation may be unavailable",
    "postfix/smtp: warning: reason: dnssec_probe 'ns:.' received a response that is not "
    "DNSSEC validated",
]


def normalize(text, qid, port):
    """A log line's text as the expectations write it: the queue ID as QID,
    the SMTP servers' port as PORT, nothing after `]:PORT:` of a TLS
    connection line (protocol, cipher)."""
    if qid:
        text = re.sub(r"\b" + re.escape(qid) + r"\b", "QID", text)
    text = re.sub(r"\b_" + str(port) + r"\._tcp\.", "_PORT._tcp.", text)
    text = re.sub(r"(?<=[\w\]]):" + str(port) + r"\b", ":PORT", text)
    return re.sub(r"(TLS connection established to \S+\]:PORT): .*", r"\1: ...", text)


class Scenario:
    """One message to user@DOMAIN, whose only MX host (or HOST, of several)
    is SERVERS[ADDRESS].

    sent        the message must reach that server (over TLS unless `tls`
                is false); otherwise no server may get it
    dsn, status, reason
                the maillog's to=<...> line (reason normalized as the log
                lines are; relay: the MX host, or `none` with relay_none)
    log         the smtp client's other lines for the delivery, and any
                warning, as `program: text` (normalize(); {ee_spki}: the
                hex SHA-256 of the ee key), in order; the probe's
                warnings (PROBE_WARNINGS) left out
    contacted   whether the client connected to the server
    tlsa        whether the TLSA query for _PORT._tcp.HOST is made
    do          whether the MX query has the DO bit
    tried       other servers (addresses) the client must connect to first
                without sending them the message
    """

    def __init__(self, name, domain, address, sent, dsn, status, reason, log=(), tls=True,
                 contacted=True, tlsa=True, do=True, relay_none=False,
                 program="postfix/smtp", host=None, tried=()):
        self.name, self.domain, self.address = name, domain, address
        self.sent, self.dsn, self.status, self.reason = sent, dsn, status, reason
        self.log, self.tls, self.contacted = list(log), tls, contacted
        self.tlsa, self.do = tlsa, do
        self.relay_none, self.program = relay_none, program
        self.host = host or DOMAINS[domain]
        self.tried = list(tried)


def tls_line(trust, host, address, program="postfix/smtp"):
    return f"{program}: {trust} TLS connection established to {host}[{address}]:PORT: ..."


# As Postfix 3.7.11 did it (module docstring), in this order.
SCENARIOS = [
    # Unsigned MX, A (and a wrong TLSA record nobody asks for): `may`.
    Scenario("insecure", "d.insecure.example.net", "127.0.0.6", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as INSECURE",
             [tls_line("Untrusted", "mx.insecure.example.net", "127.0.0.6")], tlsa=False),
    Scenario("dane-ee", "dane-ee.example.net", "127.0.0.2", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as EE",
             [tls_line("Verified", "ee.example.net", "127.0.0.2")]),
    Scenario("dane-ee-cert", "dane-ee-cert.example.net", "127.0.0.3", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as EE-CERT",
             [tls_line("Verified", "ee-cert.example.net", "127.0.0.3")]),
    Scenario("mismatch", "mismatch.dane.example.net", "127.0.0.4", False, "4.7.5", "deferred",
             "Server certificate not verified",
             ["postfix/smtp: server certificate verification failed for "
              "mismatch.example.net[127.0.0.4]:PORT: num=65:no matching DANE TLSA records",
              tls_line("Untrusted", "mismatch.example.net", "127.0.0.4")]),
    Scenario("no-tlsa", "no-tlsa.example.net", "127.0.0.5", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as NOTLSA",
             [tls_line("Untrusted", "notlsa.example.net", "127.0.0.5")]),
    Scenario("no-starttls", "no-starttls.example.net", "127.0.0.7", False, "4.7.4",
             "deferred", "TLS is required, but was not offered by host "
             "plain.example.net[127.0.0.7]", [], tls=False),
    Scenario("tlsa-servfail", "tlsa-servfail.example.net", "127.0.0.8", False, "4.7.5",
             "deferred", "TLSA lookup error for servfail.example.net:PORT",
             ["postfix/smtp: warning: DANE TLSA lookup problem: Host or domain name not found. "
              "Name service error for name=_PORT._tcp.servfail.example.net type=TLSA: "
              "Host not found, try again"]
             + ["postfix/smtp: warning: TLS policy lookup for "
                "tlsa-servfail.example.net/servfail.example.net: TLSA lookup error for "
                "servfail.example.net:PORT"],
             contacted=False, relay_none=True),
    Scenario("dane-ta", "dane-ta.example.net", "127.0.0.9", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as TA",
             [tls_line("Verified", "ta.example.net", "127.0.0.9")]),
    Scenario("unusable", "unusable.example.net", "127.0.0.10", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as PKIX",
             ["postfix/smtp: warning: _PORT._tcp.pkix.example.net unsupported TLSA "
              "certificate usage: 1 1 1 {ee_spki}",
              tls_line("Untrusted", "pkix.example.net", "127.0.0.10")]),
    # Unusable TLSA records still make TLS mandatory (`encrypt`) ...
    Scenario("unusable-plain", "unusable-plain.example.net", "127.0.0.12", False, "4.7.4",
             "deferred", "TLS is required, but was not offered by host "
             "pkix-plain.example.net[127.0.0.12]",
             ["postfix/smtp: warning: _PORT._tcp.pkix-plain.example.net unsupported TLSA "
              "certificate usage: 1 1 1 {ee_spki}"], tls=False),
    # ... where none at all leave it optional (`may`).
    Scenario("no-tlsa-plain", "no-tlsa-plain.example.net", "127.0.0.13", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as NOTLSA-PLAIN", [], tls=False),
    Scenario("dnssec-off", "dnssec-off.example.net", "127.0.0.11", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as OFF",
             ["postfix/nodnssec/smtp: warning: dnssec-off.example.net: dane configured with "
              "dnssec lookups disabled",
              tls_line("Untrusted", "off.example.net", "127.0.0.11", "postfix/nodnssec/smtp")],
             tlsa=False, do=False, program="postfix/nodnssec/smtp"),
    Scenario("dane-only", "dane-only.example.net", "127.0.0.14", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as ONLY-EE",
             [tls_line("Verified", "only-ee.example.net", "127.0.0.14")]),
    # dane-only: each way of falling short of DANE defers with 4.7.5 before
    # any connection (relay=none), saying why in a warning and the reason.
    Scenario("dane-only-no-tlsa", "dane-only-notlsa.example.net", "127.0.0.15", False, "4.7.5",
             "deferred", "no TLSA records found",
             ["postfix/smtp: warning: TLS policy lookup for "
              "dane-only-notlsa.example.net/only-notlsa.example.net: no TLSA records found"],
             contacted=False, relay_none=True),
    Scenario("dane-only-unusable", "dane-only-unusable.example.net", "127.0.0.16", False,
             "4.7.5", "deferred", "TLSA records unusable",
             ["postfix/smtp: warning: _PORT._tcp.only-pkix.example.net unsupported TLSA "
              "certificate usage: 1 1 1 {ee_spki}",
              "postfix/smtp: warning: TLS policy lookup for "
              "dane-only-unusable.example.net/only-pkix.example.net: TLSA records unusable"],
             contacted=False, relay_none=True),
    Scenario("dane-only-dnssec-off", "dane-only-off.example.net", "127.0.0.17", False, "4.7.5",
             "deferred", "client TLS configuration problem",
             ["postfix/daneonlyoff/smtp: warning: dane-only-off.example.net: dane-only "
              "configured with dnssec lookups disabled",
              "postfix/daneonlyoff/smtp: warning: TLS policy lookup for "
              "dane-only-off.example.net/only-off.example.net: client TLS configuration problem"],
             contacted=False, relay_none=True, tlsa=False, do=False,
             program="postfix/daneonlyoff/smtp"),
    # The host is signed, the MX is not: no TLSA query.
    Scenario("dane-only-insecure-mx", "only.insecure.example.net", "127.0.0.18", False, "4.7.5",
             "deferred", "non DNSSEC destination",
             ["postfix/smtp: warning: TLS policy lookup for "
              "only.insecure.example.net/only-secure.example.net: non DNSSEC destination"],
             contacted=False, relay_none=True, tlsa=False),
    # dane (smtp_tls_dane_insecure_mx_policy = dane): TLSA used, but `Trusted`.
    Scenario("insecure-mx-secure-host", "dane.insecure.example.net", "127.0.0.19", True,
             "2.0.0", "sent", "250 2.0.0 Ok: queued as SECURE",
             [tls_line("Trusted", "secure.example.net", "127.0.0.19")]),
    Scenario("two-mx", "two-mx.example.net", "127.0.0.21", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as SECOND-EE",
             ["postfix/smtp: server certificate verification failed for "
              "first-mismatch.example.net[127.0.0.20]:PORT: num=65:no matching DANE TLSA records",
              tls_line("Untrusted", "first-mismatch.example.net", "127.0.0.20"),
              "postfix/smtp: QID: Server certificate not verified",
              tls_line("Verified", "second-ee.example.net", "127.0.0.21")],
             host="second-ee.example.net", tried=["127.0.0.20"]),
    # DANE-TA checks the name: ta.example.net's certificate at ta-other.
    Scenario("dane-ta-name", "dane-ta-name.example.net", "127.0.0.22", False, "4.7.5",
             "deferred", "Server certificate not verified",
             ["postfix/smtp: server certificate verification failed for "
              "ta-other.example.net[127.0.0.22]:PORT: num=62:hostname mismatch",
              tls_line("Untrusted", "ta-other.example.net", "127.0.0.22")]),
    Scenario("dane-ee-v1", "dane-ee-v1.example.net", "127.0.0.23", True, "2.0.0", "sent",
             "250 2.0.0 Ok: queued as EE-V1",
             [tls_line("Verified", "ee-v1.example.net", "127.0.0.23")]),
]


def run_scenario(inst, servers, dns, sc, values):
    port = servers.port
    rcpt = f"user@{sc.domain}"
    subject = f"dane test {sc.name}"
    start = len(inst.maillog())
    mark = dns.mark()
    conns0, msgs0 = servers.snapshot()
    qid = inst.send(rcpt, subject)
    line = inst.wait_to_line(rcpt, 60)
    time.sleep(0.5)                         # lines logged after the to= line
    conns, msgs = servers.snapshot()
    queries = dns.since(mark)
    n = sc.name

    check(line is not None, f"{n}: the maillog has a to=<{rcpt}> line")
    relay, dsn, status, reason = mx.status_fields(line)
    reason = normalize(reason or "", qid, port)
    want_relay = "none" if sc.relay_none else f"{sc.host}[{sc.address}]:{port}"
    check(relay == want_relay and dsn == sc.dsn and status == sc.status,
          f"{n}: relay={want_relay}, dsn={sc.dsn}, status={sc.status}; got: {line}")
    check(reason == sc.reason, f"{n}: the reason is Postfix's ({sc.reason}); got ({reason})")
    check(line is not None and f" {sc.program}[" in line,
          f"{n}: the to= line is {sc.program}'s")

    # The smtp client's other lines, and any warning, in this window.
    got_log = []
    for raw in inst.maillog()[start:].splitlines():
        m = LOG_LINE.match(raw)
        if not m or raw == line:
            continue
        program, text = m.groups()
        if program == sc.program or "warning:" in text:
            got = f"{program}: {normalize(text, qid, port)}"
            # Postfix logs the TLSA lookup problem twice in a row (two
            # lookups); the same line once more says nothing new.
            if got not in PROBE_WARNINGS and (not got_log or got_log[-1] != got):
                got_log.append(got)
    want_log = [l.format(**values) for l in sc.log]
    say(f"to= line: {normalize(line or '', qid, port)}", *got_log)
    say("DNS: " + ", ".join(f"{q or '.'} {t}{' +DO' if d else ''}" for q, t, d in queries))
    check(got_log == want_log, f"{n}: the client logs {want_log}; got {got_log}")

    got = {a: msgs[a][len(msgs0[a]):] for a in SERVERS}
    name = SERVERS[sc.address][0]
    if sc.sent:
        want = [("sender@example.test", [rcpt], subject, sc.tls)]
        check(got[sc.address] == want,
              f"{n}: {name} ({sc.address}) got the message"
              f"{' over TLS' if sc.tls else ' in the clear'}; got {got[sc.address]}")
    else:
        check(not got[sc.address], f"{n}: {name} ({sc.address}) got no message")
    others = {a: m for a, m in got.items() if a != sc.address and m}
    check(not others, f"{n}: no other server got a message ({others})")
    contacted = conns[sc.address] - conns0[sc.address]
    check(bool(contacted) == sc.contacted,
          f"{n}: {name} was {'' if sc.contacted else 'not '}contacted ({contacted} times)")
    for a in sc.tried:
        check(conns[a] - conns0[a] > 0, f"{n}: {SERVERS[a][0]} ({a}) was contacted first")

    mx_do = [d for q, t, d in queries if q == sc.domain and t == "MX"]
    check(mx_do and all(d == sc.do for d in mx_do),
          f"{n}: the MX query was made {'with' if sc.do else 'without'} the DO bit "
          f"(DNSSEC OK); got {mx_do}")
    tlsa_name = f"_{port}._tcp.{sc.host}"
    asked = any(q == tlsa_name and t == "TLSA" for q, t, _ in queries)
    check(asked == sc.tlsa, f"{n}: the TLSA query for _PORT._tcp.{sc.host} was "
          f"{'' if sc.tlsa else 'not '}made")


def main():
    global VERBOSE
    VERBOSE = "-v" in sys.argv[1:]
    keep = "--keep" in sys.argv[1:]
    if SUBJECT == "postfix" and os.geteuid() != 0:
        raise SystemExit("SUBJECT=postfix needs root (a private Postfix, a mount namespace)")
    if SUBJECT == "postfix":
        dns_address, dport = "127.0.0.153", 53
    else:
        dns_address = "127.0.0.1"
        dport = mx.dns_port(dns_address)
    tmp = tempfile.mkdtemp(prefix="dane-")
    certs = Certs(tmp)
    values = {"ee_spki": certs.spki_sha256("ee").hex().upper()}
    servers = Servers(certs)
    dns = None
    inst = None
    try:
        servers.start()
        dns = Dns(dns_address, dport, make_zone(servers.port, certs))
        dns.start()
        inst = Instance(tmp, f"{dns_address}:{dport}", servers.port)
        inst.start()
        print(f"dane ({SUBJECT}): DNS on {dns_address}:{dport}, SMTP servers on port "
              f"{servers.port}, instance in {tmp}")
        for sc in SCENARIOS:
            run_scenario(inst, servers, dns, sc, values)

        probes = [d for q, t, d in dns.since(0) if q == "" and t == "NS"]
        check(probes == [True], f"dnssec probe: one NS query for the root with the DO bit "
              f"(dnssec_probe = ns:.); got {len(probes)}, DO bits {probes}")
        got = []
        for raw in inst.maillog().splitlines():
            m = LOG_LINE.match(raw)
            if m and ("dnssec_probe" in raw or "DNSSEC validation" in raw):
                got.append(f"{m.group(1)}: {m.group(2)}")
        check(got == PROBE_WARNINGS, f"dnssec probe: the maillog has {PROBE_WARNINGS} "
              f"once; got {got}")
    finally:
        if inst is not None:
            inst.stop()
        servers.stop()
        if dns is not None:
            dns.stop()
    failed = len(check.failures)
    if failed or keep:
        print(f"dane ({SUBJECT}): {failed} failed; kept {tmp} (maillog: {tmp}/maillog)")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"dane ({SUBJECT}): all passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
