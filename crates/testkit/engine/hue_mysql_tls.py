#!/usr/bin/env python3
"""Does Hue's MySQL client verify the metastore's certificate?

Hue hands hue.ini's `[desktop] [[database]] options` (JSON) to Django, and
Django's MySQL backend passes them to `MySQLdb.connect(**kwargs)`
(mysqlclient). This harness answers, with the real client against a real
local TLS MariaDB, which options make that client refuse a server whose
certificate is signed by an untrusted CA or names another host, while
still accepting a correct one.

    hue_mysql_tls.py --mysqld /usr/sbin/mariadbd --workdir DIR \
        --options '{"ssl": {"ca": "/etc/pki/rds/global-bundle.pem"}}' \
        [--options JSON ...] [--strict] [--keep] [--system-ca]

Run it with the Python whose MySQLdb is under test (e.g. Debian's
/usr/bin/python3 for python3-mysqldb, or a venv with mysqlclient from PyPI).

Options: each --options string is the exact JSON lakectl renders. The
script rewrites it before use, and prints both forms:
  * `ssl.ca` (whatever path it names) becomes the harness's trusted CA;
  * with --system-ca, SSL_CERT_FILE names that CA too (a node whose
    system store trusts it), for options that name no CA;
  * in any string value, `@CA@` becomes that CA's path and `@WORKDIR@` the
    run's directory, which holds option files for `read_default_file`
    trials (CNFS below): `client-verify.cnf` (`ssl-ca` and
    `ssl-verify-server-cert=1`), `client-verify-bare.cnf` (the same with
    the bare flag), `client-verify-portable.cnf` (client-verify.cnf plus
    `ssl-mode=VERIFY_IDENTITY`) and `verify-only.cnf`
    (`ssl-verify-server-cert=1` alone).
Connections are made as Django makes them: `charset="utf8"`,
`client_flag=CLIENT.FOUND_ROWS`, then the options on top (so an option
`client_flag` replaces Django's, as it would in Hue).

What it does: makes two CAs with openssl (one trusted, one not) and server
certificates; initialises a throwaway MariaDB datadir; starts mariadbd on
a free 127.0.0.1 port with require_secure_transport=ON, once per server
certificate; creates a user `hue` (REQUIRE SSL); and connects over TCP.
If it may (root, `unshare`), it re-runs itself in a private mount
namespace with its own /etc/hosts mapping db.good.test and db.wrong.test to
127.0.0.1, so host-name checks are tried with real names as well as with
the IP address. Nothing outside the namespace sees that file.

Servers (certificate presented) and cases (host connected to):
  good      trusted CA, SAN DNS:db.good.test (no IP)
            a_name      db.good.test    expect connect
            c_name      db.wrong.test   expect refuse  (name mismatch)
            c_ip        127.0.0.1       expect refuse  (cert lists no IP)
            control_plain  127.0.0.1 without TLS options, as a user without
                        REQUIRE SSL: expect refuse (proves that
                        require_secure_transport holds)
            control_plain_tls  the same user with {"ssl": {"ca": CA}}:
                        expect connect (the refusal above is the transport)
  good_ip   trusted CA, SAN DNS:db.good.test + IP:127.0.0.1
            a_ip        127.0.0.1       expect connect
  untrusted other CA, SAN DNS:db.good.test + IP:127.0.0.1
            b_name      db.good.test    expect refuse  (untrusted chain)
            b_ip        127.0.0.1       expect refuse
  wrongname trusted CA, SAN DNS:db.wrong.test only
            c_cert_name db.good.test    expect refuse
            c_cert_ip   127.0.0.1       expect refuse
(`*_name` cases are skipped when no private /etc/hosts could be had.)

Output: JSON Lines on stdout -- one `client` line, one line per case and
option set ({"case", "options", "host", "connected", "error", "expect",
"as_expected", "tls"}), one `summary` line per option set, saying whether
that option set verifies (every case as expected). Progress goes to
stderr. Exit 0 when the harness ran (2 on a harness failure); with
--strict, 1 when any option set does not verify.

The server is stopped and the run's directory removed on exit, on error
and on SIGTERM/SIGINT (--keep keeps the directory for a look at the logs).
"""

import argparse
import copy
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

NS_MARK = "HUE_MYSQL_TLS_IN_NS"
GOOD, WRONG = "db.good.test", "db.wrong.test"
USER, PASSWORD, DB = "hue", "hue-Secret-1", "hue"
PLAIN_USER = "plain"  # no REQUIRE SSL: only require_secure_transport stops it


def log(msg):
    print("hue_mysql_tls: " + msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), r.returncode, r.stdout))
    return r.stdout


# --- certificates -----------------------------------------------------------

def make_ca(d, name):
    key, pem = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-days", "2", "-keyout", key, "-out", pem,
         "-subj", "/O=lakectl test/CN=%s" % name,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return key, pem


def make_server_cert(d, name, ca, cn, sans):
    ca_key, ca_pem = ca
    key, csr, pem = (os.path.join(d, name + s) for s in (".key", ".csr", ".pem"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=%s\n" % ",".join(sans))
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256",
         "-keyout", key, "-out", csr, "-subj", "/O=lakectl test/CN=%s" % cn])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext, "-out", pem])
    return {"cert": pem, "key": key, "cn": cn, "san": sans,
            "issuer": os.path.basename(ca_pem)}


# --- the server -------------------------------------------------------------

def _die_with_parent():
    try:  # PR_SET_PDEATHSIG = 1: mariadbd gets SIGKILL if we die hard.
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, mysqld, install_db, work):
        self.mysqld, self.install_db, self.work = mysqld, install_db, work
        self.datadir = os.path.join(work, "data")
        self.sock = os.path.join(work, "mysqld.sock")
        self.pid_file = os.path.join(work, "mysqld.pid")
        self.proc, self.port = None, None

    def init(self):
        os.makedirs(os.path.join(self.work, "tmp"), exist_ok=True)
        log("initialising %s" % self.datadir)
        run([self.install_db, "--no-defaults", "--datadir=" + self.datadir,
             "--user=root", "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve"])

    def start(self, cert, label):
        self.port = free_port()
        err = os.path.join(self.work, "mysqld-%s.err" % label)
        cmd = [self.mysqld, "--no-defaults", "--datadir=" + self.datadir,
               "--user=root", "--socket=" + self.sock, "--pid-file=" + self.pid_file,
               "--bind-address=127.0.0.1", "--port=%d" % self.port,
               "--tmpdir=" + os.path.join(self.work, "tmp"), "--log-error=" + err,
               "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
               "--require-secure-transport=ON",
               "--ssl-cert=" + cert["cert"], "--ssl-key=" + cert["key"]]
        log("starting mariadbd (%s) on 127.0.0.1:%d" % (label, self.port))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        import MySQLdb
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited (%s); log:\n%s" % (self.proc.returncode, tail(err)))
            try:
                MySQLdb.connect(unix_socket=self.sock, user="root", connect_timeout=2).close()
                break
            except MySQLdb.Error:
                if time.time() > deadline:
                    raise RuntimeError("mariadbd did not accept connections; log:\n" + tail(err))
                time.sleep(0.3)

    def admin(self, *sql):
        import MySQLdb
        c = MySQLdb.connect(unix_socket=self.sock, user="root")
        try:
            cur = c.cursor()
            out = []
            for s in sql:
                cur.execute(s)
                out.append(cur.fetchall())
            c.commit()
            return out
        finally:
            c.close()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def tail(path, n=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# --- the client -------------------------------------------------------------

def render_options(raw, ca, work, client_cnfs=None):
    opts = json.loads(raw)
    if not isinstance(opts, dict):
        raise SystemExit("--options must be a JSON object: %r" % raw)
    notes = []

    def sub(v):
        if isinstance(v, str):
            return v.replace("@CA@", ca).replace("@WORKDIR@", work)
        if isinstance(v, dict):
            return {k: sub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    used = sub(copy.deepcopy(opts))
    # An option file the node carries (--client-cnf NODE_PATH=FILE): read
    # from the harness's copy, whose ssl-ca names the harness CA.
    rdf = used.get("read_default_file")
    if isinstance(rdf, str) and client_cnfs and rdf in client_cnfs:
        notes.append("read_default_file %s -> %s" % (rdf, client_cnfs[rdf]))
        used["read_default_file"] = client_cnfs[rdf]
    ssl = used.get("ssl")
    if isinstance(ssl, dict) and isinstance(ssl.get("ca"), str) and ssl["ca"] != ca:
        notes.append("ssl.ca %s -> harness CA %s" % (ssl["ca"], ca))
        ssl["ca"] = ca
    return opts, used, notes


# Option files for `read_default_file` trials (libmariadb reads them inside
# mysql_real_connect, after mysqlclient's own mysql_options calls).
CNFS = {
    # CA and host-name check: what a node could carry for Hue.
    "client-verify.cnf": "[client]\nssl-ca=@CA@\nssl-verify-server-cert=1\n",
    # The same with the bare flag (as MySQL's docs write it).
    "client-verify-bare.cnf": "[client]\nssl-ca=@CA@\nssl-verify-server-cert\n",
    # client-verify.cnf plus MySQL 8's spelling (libmariadb ignores it; for
    # a Hue built on Oracle's libmysqlclient, which dropped the flag).
    "client-verify-portable.cnf": "[client]\nssl-ca=@CA@\nssl-verify-server-cert=1\n"
                                  "ssl-mode=VERIFY_IDENTITY\n",
    # Only the check; the CA comes from the `ssl` option.
    "verify-only.cnf": "[client]\nssl-verify-server-cert=1\n",
}


def write_cnfs(work, ca):
    for name, text in CNFS.items():
        with open(os.path.join(work, name), "w") as f:
            f.write(text.replace("@CA@", ca))


def try_connect(host, port, options, user=USER):
    import MySQLdb
    from MySQLdb.constants import CLIENT
    kwargs = {"host": host, "port": port, "user": user, "passwd": PASSWORD, "db": DB,
              "connect_timeout": 10, "charset": "utf8", "client_flag": CLIENT.FOUND_ROWS}
    kwargs.update(options)  # as Django does: OPTIONS last
    try:
        conn = MySQLdb.connect(**kwargs)
    except Exception as e:  # MySQLdb.Error, or TypeError for an unknown keyword
        return False, "%s: %s" % (type(e).__name__, e), None
    try:
        cur = conn.cursor()
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        tls = {k: v for k, v in cur.fetchall()}
        cur.execute("SELECT CURRENT_USER()")
        tls["current_user"] = cur.fetchone()[0]
    finally:
        conn.close()
    return True, None, tls


def client_info():
    import MySQLdb
    import MySQLdb._mysql as m
    return {"client": {
        "python": sys.executable, "python_version": sys.version.split()[0],
        "mysqlclient": ".".join(str(x) for x in MySQLdb.version_info[:3]),
        "mysqlclient_path": os.path.dirname(MySQLdb.__file__),
        "libmysqlclient": m.get_client_info(),
        "openssl": run(["openssl", "version"]).strip()}}


# --- main -------------------------------------------------------------------

def setup_hosts(work):
    """Inside our private mount namespace: our own /etc/hosts."""
    if os.environ.get(NS_MARK) != "1":
        return False
    hosts = os.path.join(work, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1\tlocalhost\n127.0.0.1\t%s %s\n" % (GOOD, WRONG))
    r = subprocess.run(["mount", "--bind", hosts, "/etc/hosts"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        log("could not bind-mount a private /etc/hosts (%s); name cases skipped" % r.stdout.strip())
        return False
    try:
        return socket.gethostbyname(GOOD) == "127.0.0.1" == socket.gethostbyname(WRONG)
    except OSError:
        return False


def maybe_reexec(args):
    if args.no_namespace or os.environ.get(NS_MARK) or os.geteuid() != 0 \
            or shutil.which("unshare") is None:
        return
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        log("unshare --mount not permitted; name cases will be skipped")
        return
    env = dict(os.environ, **{NS_MARK: "1"})
    cmd = ["unshare", "--mount", "--propagation", "private", sys.executable,
           os.path.abspath(__file__)] + sys.argv[1:]
    # exec: signals reach the child, and its exit code is ours.
    os.execvpe("unshare", cmd, env)


CASES = [
    # server, case, host (a name needs the private /etc/hosts), expect,
    # control (False: a case for each option set; True / "tls": the
    # `plain` user without / with TLS, once)
    ("good", "a_name", GOOD, "connect", False),
    ("good", "c_name", WRONG, "refuse", False),
    ("good", "c_ip", "127.0.0.1", "refuse", False),
    ("good", "control_plain", "127.0.0.1", "refuse", True),
    ("good", "control_plain_tls", "127.0.0.1", "connect", "tls"),
    ("good_ip", "a_ip", "127.0.0.1", "connect", False),
    ("untrusted", "b_name", GOOD, "refuse", False),
    ("untrusted", "b_ip", "127.0.0.1", "refuse", False),
    ("wrongname", "c_cert_name", GOOD, "refuse", False),
    ("wrongname", "c_cert_ip", "127.0.0.1", "refuse", False),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mysqld", required=True, help="mariadbd / mysqld binary")
    p.add_argument("--install-db", help="mariadb-install-db (default: beside --mysqld's "
                   "package, i.e. found on PATH)")
    p.add_argument("--workdir", required=True, help="a run directory is made inside it")
    p.add_argument("--options", action="append", required=True,
                   help="Hue's database options JSON (repeatable)")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every option set verifies")
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument("--system-ca", action="store_true",
                   help="also trust the harness CA as OpenSSL's default store (SSL_CERT_FILE), "
                   "as a node would after update-ca-trust; for options that name no CA")
    p.add_argument("--no-namespace", action="store_true",
                   help="do not use a private mount namespace / hosts file")
    p.add_argument("--client-cnf", action="append", default=[], metavar="NODE_PATH=FILE",
                   help="an option file a node carries at NODE_PATH (its text in FILE): options "
                   "naming NODE_PATH in read_default_file read a copy whose ssl-ca is the "
                   "harness CA (repeatable)")
    args = p.parse_args()
    for spec in args.client_cnf:
        if "=" not in spec or not os.path.isfile(spec.split("=", 1)[1]):
            p.error("--client-cnf %s: expected NODE_PATH=FILE with FILE readable" % spec)
    for raw in args.options:  # fail early on bad JSON, before any re-exec
        if not isinstance(json.loads(raw), dict):
            p.error("--options must be a JSON object: %r" % raw)
    if not (os.path.isfile(args.mysqld) and os.access(args.mysqld, os.X_OK)):
        p.error("--mysqld %s is not an executable file" % args.mysqld)
    maybe_reexec(args)

    install_db = args.install_db or shutil.which("mariadb-install-db") \
        or shutil.which("mysql_install_db")
    if not install_db:
        raise SystemExit("no mariadb-install-db on PATH; give --install-db")
    os.makedirs(args.workdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="hue-tls.", dir=os.path.abspath(args.workdir))
    if len(os.path.join(work, "mysqld.sock")) > 100:
        shutil.rmtree(work)
        raise SystemExit("--workdir path too long for a unix socket")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = Server(args.mysqld, install_db, work)
    rc = 0
    try:
        names_ok = setup_hosts(work)
        print(json.dumps(client_info()), flush=True)
        certs_dir = os.path.join(work, "certs")
        os.makedirs(certs_dir)
        trusted = make_ca(certs_dir, "trusted-ca")
        rogue = make_ca(certs_dir, "untrusted-ca")
        ca = trusted[1]
        certs = {
            "good": make_server_cert(certs_dir, "good", trusted, GOOD, ["DNS:" + GOOD]),
            "good_ip": make_server_cert(certs_dir, "good-ip", trusted, GOOD,
                                        ["DNS:" + GOOD, "IP:127.0.0.1"]),
            "untrusted": make_server_cert(certs_dir, "untrusted", rogue, GOOD,
                                          ["DNS:" + GOOD, "IP:127.0.0.1"]),
            "wrongname": make_server_cert(certs_dir, "wrongname", trusted, WRONG,
                                          ["DNS:" + WRONG]),
        }
        if args.system_ca:
            os.environ["SSL_CERT_FILE"] = ca
            log("SSL_CERT_FILE=%s (harness CA as the default store)" % ca)
        write_cnfs(work, ca)
        client_cnfs = {}
        for i, spec in enumerate(args.client_cnf):
            node_path, local = spec.split("=", 1)
            with open(local) as f:
                lines = f.read().splitlines()
            copied = os.path.join(work, "node-%d.cnf" % i)
            with open(copied, "w") as f:
                for line in lines:
                    if line.strip().replace(" ", "").startswith("ssl-ca="):
                        line = "ssl-ca=" + ca
                    f.write(line + "\n")
            client_cnfs[node_path] = copied
        option_sets = [render_options(raw, ca, work, client_cnfs) for raw in args.options]

        server.init()
        results = {i: [] for i in range(len(option_sets))}
        first = True
        for label in ("good", "good_ip", "untrusted", "wrongname"):
            server.start(certs[label], label)
            if first:
                server.admin("CREATE DATABASE %s" % DB,
                             "CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE SSL" % (USER, PASSWORD),
                             "GRANT ALL ON %s.* TO '%s'@'%%'" % (DB, USER),
                             "CREATE USER '%s'@'%%' IDENTIFIED BY '%s'" % (PLAIN_USER, PASSWORD),
                             "GRANT ALL ON %s.* TO '%s'@'%%'" % (DB, PLAIN_USER))
                first = False
            rst = server.admin("SELECT @@require_secure_transport, @@version, @@have_ssl")[0][0]
            log("server %s: require_secure_transport=%s version=%s have_ssl=%s" % ((label,) + rst))
            if str(rst[0]) != "1":
                raise RuntimeError("require_secure_transport is not ON")
            cert = certs[label]
            for srv, case, host, expect, plain in CASES:
                if srv != label:
                    continue
                if host != "127.0.0.1" and not names_ok:
                    continue
                if plain == "tls":
                    sets = [(0, ({"ssl": {"ca": "@CA@"}}, {"ssl": {"ca": ca}}, []))]
                elif plain:
                    sets = [(0, ({}, {}, []))]
                else:
                    sets = list(enumerate(option_sets))
                for i, (opts, used, notes) in sets:
                    ok, err, tls = try_connect(host, server.port, used,
                                               user=PLAIN_USER if plain else USER)
                    rec = {"case": case, "server_cert": {"cn": cert["cn"], "san": cert["san"],
                                                         "issuer": cert["issuer"]},
                           "host": host, "options": opts, "options_used": used,
                           "connected": ok, "error": err, "tls": tls, "expect": expect,
                           "as_expected": ok == (expect == "connect")}
                    if notes:
                        rec["notes"] = notes
                    print(json.dumps(rec), flush=True)
                    if not plain:
                        results[i].append(rec)
                    elif rec["as_expected"] is False:
                        log("control case %s failed: %s" % (case, err or "connected"))
                        rc = 2
            server.stop()
        for i, (opts, used, _) in enumerate(option_sets):
            recs = results[i]
            verifies = bool(recs) and all(r["as_expected"] for r in recs)
            print(json.dumps({"summary": True, "options": opts, "options_used": used,
                              "name_cases": names_ok, "system_ca": args.system_ca, "verifies": verifies,
                              "cases": {r["case"]: ("connected" if r["connected"] else "refused")
                                        for r in recs}}), flush=True)
            if args.strict and not verifies and rc == 0:
                rc = 1
    except Exception as e:
        log("harness failure: %s: %s" % (type(e).__name__, e))
        rc = 2
    finally:
        server.stop()
        if args.keep:
            log("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
