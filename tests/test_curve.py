"""test_curve.py - remote attach with CURVE: keys from `trainscope keygen`, a
collector with --curve-secret and --allow, and clients with and without an
allowed key on all three sockets (ingest, query API, live), plus a relay that
carries a node's ranks to a keyed collector.

A client without an allowed key gets nothing and can send nothing: its data
is not stored, its API request is not answered, its SUB gets no LIVE, and
the collector logs the refused key. Every bad key set-up gets a clear error.

usage: /usr/bin/python3 test_curve.py TRAINSCOPE PUB_LOAD [LIBTRAINSCOPE.so] [VIEWER] [case ...]
"""
import os
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

import zmq

from tslib import Collector, check, cli, export_points, finish, free_port, read_truth

TRAINSCOPE, PUB_LOAD = sys.argv[1], sys.argv[2]
# Optional third argument: the shared libtrainscope, for the Python client check.
# meson names the versioned file (libtrainscope.so.0.1.0): match ".so" anywhere in the name.
LIB = sys.argv[3] if len(sys.argv) > 3 and ".so" in os.path.basename(sys.argv[3]) else None
ARGS = sys.argv[4:] if LIB else sys.argv[3:]
# Optional next argument: trainscope-viewer, for the keyed viewer check.
VIEWER = os.path.abspath(ARGS.pop(0)) if ARGS and os.path.basename(ARGS[0]) == "trainscope-viewer" else None
HDR = struct.Struct("<IBBHQQ")
TMP = tempfile.mkdtemp(prefix="ts-curve-")


def keygen(name):
    rc, out, err = cli(TRAINSCOPE, "keygen", "--out", os.path.join(TMP, name))
    if rc != 0:
        raise RuntimeError(f"keygen {name}: {err}")
    return os.path.join(TMP, name + ".key"), os.path.join(TMP, name + ".pub"), out


def z85_pair(keyfile):
    """(public, secret) Z85 bytes from a .key file."""
    pub = sec = None
    with open(keyfile) as f:
        for line in f:
            line = line.strip()
            if line.startswith("public-key"):
                pub = line.split("=", 1)[1].strip().strip('"').encode()
            if line.startswith("secret-key"):
                sec = line.split("=", 1)[1].strip().strip('"').encode()
    return pub, sec


SERVER_KEY, SERVER_PUB, _ = keygen("collector")
ALICE_KEY, ALICE_PUB, _ = keygen("alice")
RELAY_KEY, RELAY_PUB, _ = keygen("relay")
MALLORY_KEY, MALLORY_PUB, _ = keygen("mallory")   # a valid key pair, never allowed
ALLOW = os.path.join(TMP, "allowed")
os.mkdir(ALLOW)
for p in (ALICE_PUB, RELAY_PUB):
    os.link(p, os.path.join(ALLOW, os.path.basename(p)))
os.link(MALLORY_KEY, os.path.join(ALLOW, "mallory.key"))  # secret files there are not read


def env_for(client_key, server=SERVER_PUB):
    env = dict(os.environ)
    env.pop("TRAINSCOPE_SERVER_KEY", None)
    env.pop("TRAINSCOPE_CLIENT_KEY", None)
    if server:
        env["TRAINSCOPE_SERVER_KEY"] = server
    if client_key:
        env["TRAINSCOPE_CLIENT_KEY"] = client_key
    return env


def keyed_collector(extra=()):
    return Collector(TRAINSCOPE, tmp=tempfile.mkdtemp(dir=TMP),
                     extra=["--curve-secret", SERVER_KEY, "--allow", ALLOW, "--commit-ms", "20",
                            *extra])


def ready(col, timeout=10):
    """The keyed collector's API answers alice (tslib's wait_ready is keyless)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if col.proc.poll() is not None:
            raise RuntimeError(f"collector exited: {col.output()}")
        if api(col.api, ALICE_KEY, {"op": "info"}, 300) is not None:
            return True
    return False


def sock(kind, ep, client_key, server_pub=SERVER_PUB):
    s = zmq.Context.instance().socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    if client_key:
        pub, sec = z85_pair(client_key)
        s.curve_publickey, s.curve_secretkey = pub, sec
        s.curve_serverkey = z85_pair(server_pub)[0]
    s.connect(ep)
    return s


def api(ep, client_key, req, timeout_ms=2000):
    import json
    s = sock(zmq.DEALER, ep, client_key)
    try:
        s.send(json.dumps(req).encode())
        if not s.poll(timeout_ms):
            return None
        return json.loads(s.recv_multipart()[0])
    finally:
        s.close()


def publish(col_ingest, run, key, steps=3000, rank=0, world=1, timeout_ms=20000, server=SERVER_PUB,
            extra=()):
    truth = os.path.join(TMP, f"truth-{run}-{rank}.csv")
    p = subprocess.run([PUB_LOAD, "--endpoint", col_ingest, "--run", run, "--rank", str(rank),
                        "--world", str(world), "--steps", str(steps), "--metrics", "2", "--seed", "3",
                        "--truth", truth, "--ring", "65536", "--timeout-ms", str(timeout_ms), *extra],
                       capture_output=True, timeout=120, env=env_for(key, server))
    return p.returncode, p.stderr.decode(errors="replace"), truth


def run_names(col):
    r = api(col.api, ALICE_KEY, {"op": "runs"})
    return {x["name"] for x in r["runs"]} if r else None


def keygen_files():
    key, pub, out = ALICE_KEY, ALICE_PUB, ""
    check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "keygen: the secret key file has mode 0600")
    check(stat.S_IMODE(os.stat(pub).st_mode) & 0o077 != 0o077 and "secret" not in open(pub).read().replace("secret key", ""),
          "keygen: the .pub holds the public key only")
    pub_z, sec_z = z85_pair(key)
    check(zmq.curve_public(sec_z) == pub_z and z85_pair(pub)[0] == pub_z,
          "keygen: the public key belongs to the secret key (libzmq's zmq_curve_public agrees)")
    rc, _, err = cli(TRAINSCOPE, "keygen", "--out", os.path.join(TMP, "alice"))
    check(rc == 1 and "exists" in err and z85_pair(key) == (pub_z, sec_z),
          f"keygen refuses to replace an existing key ({err.strip()})")


def allowed_and_refused():
    col = keyed_collector().start(wait=False)
    check(ready(col), "a collector with --curve-secret and --allow answers an allowed client's API request")
    check("CURVE: server public key" in col.output() and "2 allowed client keys" in col.output(),
          "the banner names the server key and the number of allowed keys (a .key in the allow dir is not read)")

    # Ingest: alice's points arrive exactly; mallory's and a plain client's never.
    rc, err, truth = publish(col.ingest, "alice-run", ALICE_KEY)
    got, rows = export_points(TRAINSCOPE, col.store, "alice-run")
    want, n = read_truth(truth, 0)
    check(rc == 0 and rows == n == 6000 and got == want,
          f"an allowed publisher (env TRAINSCOPE_SERVER_KEY/CLIENT_KEY) stores every point exactly ({rows} rows)")
    rc, err, _ = publish(col.ingest, "mallory-run", MALLORY_KEY, steps=200, timeout_ms=3000)
    check(rc != 0 and "close: not everything was acknowledged" in err,
          f"a publisher with an unknown key gets no ACK ({err.strip()[-90:]})")
    rc, err, _ = publish(col.ingest, "plain-run", None, steps=200, timeout_ms=3000, server=None)
    check(rc != 0, "a plain (unencrypted) publisher gets no ACK")
    runs = run_names(col)
    check(runs == {"alice-run"}, f"nothing from the unknown key or the plain client is stored ({runs})")
    out = col.output()
    mallory_pub = z85_pair(MALLORY_KEY)[0].decode()
    check(f"public key {mallory_pub} is not in the allow-list" in out,
          "the collector logs the refused key")

    # Raw pyzmq clients: a HELLO from mallory gets nothing back at all.
    s = sock(zmq.DEALER, col.ingest, MALLORY_KEY)
    s.send_multipart([HDR.pack(0x50435354, 1, 1, 0, 77, 1), b'{"run":"raw-mallory"}'])
    check(s.poll(1500) == 0, "a HELLO from an unknown key gets no reply")
    s.close()

    # Query API.
    r = api(col.api, ALICE_KEY, {"op": "info"})
    check(r is not None and r.get("ok"), "the query API answers alice")
    check(api(col.api, MALLORY_KEY, {"op": "runs"}, 1500) is None, "the query API does not answer an unknown key")
    check(api(col.api, None, {"op": "runs"}, 1500) is None, "the query API does not answer a plain client")

    # Live: subscribers with each key while alice publishes.
    subs = {name: sock(zmq.SUB, col.live, key) for name, key in
            (("alice", ALICE_KEY), ("mallory", MALLORY_KEY), ("plain", None))}
    for s in subs.values():
        s.setsockopt(zmq.SUBSCRIBE, b"")
    time.sleep(0.7)
    pub = subprocess.Popen([PUB_LOAD, "--endpoint", col.ingest, "--run", "live-run", "--steps", "3000",
                            "--metrics", "1", "--sleep-us", "500", "--ring", "65536"],
                           env=env_for(ALICE_KEY), stderr=subprocess.DEVNULL)
    got = {name: 0 for name in subs}
    deadline = time.time() + 4
    while time.time() < deadline:
        for name, s in subs.items():
            while s.poll(0):
                f = s.recv_multipart()
                if f and f[0] == b"live-run":
                    got[name] += 1
        time.sleep(0.02)
    pub.wait(timeout=60)
    check(got["alice"] > 0, f"alice's SUB gets LIVE messages ({got['alice']})")
    check(got["mallory"] == 0 and got["plain"] == 0,
          f"the unknown key's SUB and a plain SUB get no LIVE ({got['mallory']}, {got['plain']})")
    for s in subs.values():
        s.close()

    # The CLI queries the remote collector with the same keys.
    p = subprocess.run([TRAINSCOPE, "query", col.api], capture_output=True, timeout=30,
                       env=env_for(ALICE_KEY))
    check(p.returncode == 0 and b"alice-run" in p.stdout, "trainscope query with alice's keys lists the runs")
    p = subprocess.run([TRAINSCOPE, "query", col.api, "--timeout-ms", "1500"], capture_output=True,
                       timeout=30, env=env_for(MALLORY_KEY))
    check(p.returncode == 1 and b"alice-run" not in p.stdout and b"no reply" in p.stderr,
          f"trainscope query with an unknown key gets nothing ({p.stderr.decode().strip()[:100]})")
    sid = [s["id"] for s in api(col.api, ALICE_KEY, {"op": "series", "run": "alice-run"})["series"]][0]
    p = subprocess.run([TRAINSCOPE, "query", col.api, '{"op":"points","series":%d,"from":0,"to":2}' % sid,
                        "--server-key", SERVER_PUB, "--client-key", ALICE_KEY],
                       capture_output=True, timeout=30, env=env_for(None, None))
    lines = p.stdout.decode().splitlines()
    check(p.returncode == 0 and lines[1] == "step,time_ns,value" and len(lines) == 5,
          f"trainscope query --server-key/--client-key decodes points ({lines[:2]})")
    if LIB:
        python_client(col)
    check(col.stop() == 0, "collector exits 0")


def python_client(col):
    """The Python client (ctypes over libtrainscope) takes the keys from the
    same two environment variables."""
    code = ("import sys, trainscope\n"
            "run = trainscope.init(name=sys.argv[1], close_timeout=3)\n"
            "[run.log({'loss': 1.0 / (s + 1)}, step=s) for s in range(100)]\n"
            "run.close()\n")
    py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python")
    for name, key in (("py-alice", ALICE_KEY), ("py-mallory", MALLORY_KEY)):
        env = env_for(key)
        env.update(TRAINSCOPE_LIB=LIB, PYTHONPATH=py, TRAINSCOPE_ENDPOINT=col.ingest)
        subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True, timeout=60)
    runs = run_names(col)
    pts = api(col.api, ALICE_KEY, {"op": "series", "run": "py-alice"})
    check("py-alice" in runs and "py-mallory" not in runs and pts["series"][0]["count"] == 100,
          f"Python client: with alice's key all 100 points stored, with mallory's nothing ({sorted(runs)})")


def through_relay():
    """A node's ranks (plain, on loopback) through a relay that holds an
    allowed key; a relay with an unknown key gets nothing through."""
    col = keyed_collector().start(wait=False)
    ready(col)
    good = f"tcp://127.0.0.1:{free_port()}"
    bad = f"tcp://127.0.0.1:{free_port()}"
    relays = [subprocess.Popen([TRAINSCOPE, "relay", "--upstream", col.ingest, "--listen", ep,
                                "--server-key", SERVER_PUB, "--client-key", key],
                               stderr=subprocess.PIPE, env=env_for(None, None))
              for ep, key in ((good, RELAY_KEY), (bad, MALLORY_KEY))]
    time.sleep(0.3)
    results = [publish(good, "relayed", None, steps=2000, rank=r, world=4, server=None) for r in range(2)]
    check(all(rc == 0 for rc, _, _ in results), "ranks behind a keyed relay: every point acknowledged")
    got, rows = export_points(TRAINSCOPE, col.store, "relayed")
    check(rows == 2 * 2000 * 2, f"...and stored once each ({rows} rows)")
    rc, err, _ = publish(bad, "relayed-bad", None, steps=100, timeout_ms=2500, server=None)
    check(rc != 0 and "relayed-bad" not in (run_names(col) or set()),
          "a relay whose key is not allowed gets nothing through")
    for r in relays:
        r.send_signal(signal.SIGTERM)
    codes = [r.wait(timeout=10) for r in relays]
    check(codes == [0, 0], f"both relays exit 0 on SIGTERM, also the one whose upstream refuses it ({codes})")
    check(col.stop() == 0, "collector exits 0")


def errors():
    store = os.path.join(TMP, "err.db")

    def collect(*args):
        p = subprocess.run([TRAINSCOPE, "collect", "--store", store, "--quiet",
                            "--ingest", f"tcp://127.0.0.1:{free_port()}", "--api", f"tcp://127.0.0.1:{free_port()}",
                            "--live", f"tcp://127.0.0.1:{free_port()}", *args],
                           capture_output=True, timeout=10)
        return p.returncode, p.stderr.decode(errors="replace").strip()

    loose = os.path.join(TMP, "loose.key")
    with open(loose, "w") as f:
        f.write(open(SERVER_KEY).read())
    os.chmod(loose, 0o644)
    rc, err = collect("--curve-secret", loose, "--allow", ALLOW)
    check(rc == 1 and "chmod 600" in err and loose in err, f"a secret key readable by others is refused ({err})")
    rc, err = collect("--curve-secret", os.path.join(TMP, "nope.key"), "--allow", ALLOW)
    check(rc == 1 and "nope.key" in err and "No such file" in err, f"a missing key file is named ({err})")
    rc, err = collect("--curve-secret", SERVER_PUB, "--allow", ALLOW)
    check(rc == 1 and "no secret-key" in err, f"a .pub given as the secret key ({err})")
    garbage = os.path.join(TMP, "garbage.key")
    with open(garbage, "w") as f:
        f.write("curve\n    secret-key = \"tooshort\"\n")
    os.chmod(garbage, 0o600)
    rc, err = collect("--curve-secret", garbage, "--allow", ALLOW)
    check(rc == 1 and "line 2" in err and "40 Z85" in err, f"a malformed key names the line ({err})")
    rc, err = collect("--curve-secret", SERVER_KEY)
    check(rc == 2 and "--allow" in err, f"--curve-secret without --allow ({err})")
    empty = os.path.join(TMP, "empty-allow")
    os.mkdir(empty)
    rc, err = collect("--curve-secret", SERVER_KEY, "--allow", empty)
    check(rc == 1 and "no .pub" in err, f"an allow directory without keys ({err})")
    p = subprocess.run([TRAINSCOPE, "collect", "--store", store, "--quiet", "--bind-all"],
                       capture_output=True, timeout=10)
    err = p.stderr.decode()
    check(p.returncode == 2 and "0.0.0.0" in err and "--insecure" in err,
          f"--bind-all without keys is refused ({err.strip()[:100]})")
    rc, err = collect("--ingest", f"tcp://0.0.0.0:{free_port()}", "--insecure", "--curve-secret", SERVER_KEY,
                      "--allow", ALLOW)
    check(rc == 2 and "contradict" in err, f"--insecure with keys ({err})")
    # An insecure network collector does start when asked explicitly.
    col = Collector(TRAINSCOPE, tmp=tempfile.mkdtemp(dir=TMP), extra=["--insecure"])
    col.ingest = f"tcp://0.0.0.0:{free_port()}"
    col.start()
    check(col.stop() == 0, "--insecure lets a collector listen on 0.0.0.0")

    # Publisher side: half a configuration, a loose key, a bad server key.
    rc, err, _ = publish("tcp://127.0.0.1:1", "x", None, steps=1)   # server key only
    check(rc == 1 and "TRAINSCOPE_CLIENT_KEY" in err, f"server key without client key ({err.strip()[:110]})")
    rc, err, _ = publish("tcp://127.0.0.1:1", "x", loose, steps=1)
    check(rc == 1 and "chmod 600" in err, f"a publisher's loose secret key ({err.strip()[:110]})")
    rc, err, _ = publish("tcp://127.0.0.1:1", "x", ALICE_KEY, steps=1, server="not-a-key")
    check(rc == 1 and "TRAINSCOPE_SERVER_KEY" in err and "not-a-key" in err,
          f"a bad TRAINSCOPE_SERVER_KEY is named ({err.strip()[:110]})")


def viewer_shot(source, out, key, server=SERVER_PUB):
    """trainscope-viewer --screenshot under SDL's offscreen driver with the
    given keys in its environment: (exit status, stderr, seconds taken)."""
    env = env_for(key, server)
    env.update(SDL_VIDEODRIVER="offscreen",
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
    t = time.time()
    p = subprocess.run([VIEWER, source, "--screenshot", out, "--size", "640x400"],
                       capture_output=True, timeout=120, env=env, cwd=TMP)
    return p.returncode, p.stderr.decode(errors="replace"), time.time() - t


def drawn_pixels(png):
    """Pixels of the plot area (above the status line) that differ from the
    background colour of the top-left corner."""
    from test_viewer_attach import read_png
    w, h, rows = read_png(png)
    bpp = len(rows[0]) // w
    bg = rows[0][0:3]
    return sum(1 for row in rows[:h - 40] for x in range(0, len(row), bpp) if row[x:x + 3] != bg)


def keyed_viewer():
    """The viewer on a keyed collector: with alice's key it draws the run
    exactly as it draws the store; without keys it exits with a sentence that
    names the endpoint and the key variables; with half a key set-up it
    fails at once naming the missing variable."""
    if not VIEWER:
        check(False, "test_curve.py needs trainscope-viewer as an argument for the viewer case")
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # No detectors: the query API has no findings op yet, so the network
    # source draws no finding markers while the store file's drawing has them.
    col = keyed_collector(["--detect", "off"]).start(wait=False)
    try:
        check(ready(col), "the keyed collector answers")
        rc, err, _ = publish(col.ingest, "viewed-run", ALICE_KEY, steps=1500)
        check(rc == 0, f"alice publishes a run for the viewer ({err.strip()[-90:]})")
        net_png, file_png = os.path.join(TMP, "v-net.png"), os.path.join(TMP, "v-file.png")
        rc, err, _ = viewer_shot(col.api, net_png, ALICE_KEY)
        check(rc == 0 and os.path.exists(net_png), f"the viewer with alice's key renders {col.api} ({err.strip()})")
        rc, err, _ = viewer_shot(col.store, file_png, None, server=None)
        check(rc == 0, f"the viewer renders the store file ({err.strip()})")
        if os.path.exists(net_png) and os.path.exists(file_png):
            from test_viewer_attach import read_png
            _, hn, net = read_png(net_png)
            _, hf, fil = read_png(file_png)
            n = drawn_pixels(net_png)
            check(n > 1000 and net[:hn - 40] == fil[:hf - 40],
                  f"with the allowed key the viewer draws the run as from its store ({n} plot pixels)")
        gone = os.path.join(TMP, "v-plain.png")
        rc, err, secs = viewer_shot(col.api, gone, None, server=None)
        port = col.api.rsplit(":", 1)[1]
        check(rc != 0 and port in err and "TRAINSCOPE_SERVER_KEY" in err and secs < 60,
              f"without keys the viewer exits {rc} within {secs:.0f} s, naming the endpoint and the key "
              f"variables ({err.strip()[:160]})")
        check(not os.path.exists(gone) or drawn_pixels(gone) == 0, "without keys no data is drawn")
        rc, err, secs = viewer_shot(col.api, gone, None)   # server key only
        check(rc != 0 and "TRAINSCOPE_CLIENT_KEY" in err and secs < 20,
              f"a server key without a client key fails at once ({secs:.1f} s): {err.strip()[:140]}")
    finally:
        col.stop()


CASES = {"keygen": keygen_files, "allow": allowed_and_refused, "relay": through_relay, "errors": errors,
         "viewer": keyed_viewer}

if __name__ == "__main__":
    check(zmq.has("curve"), "pyzmq's libzmq has CURVE")
    for name in ARGS or CASES:
        print(f"--- {name}", flush=True)
        CASES[name]()
    finish()
