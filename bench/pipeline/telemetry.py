#!/usr/bin/python3
"""Small client of the DPDK telemetry v2 socket (any DPDK >= 20.05 process).

Usage:
  telemetry.py SOCKET COMMAND
      Send one command (e.g. /ethdev/stats,1  /ethdev/list  /eal/params  /)
      and print the JSON reply.
  telemetry.py rate SOCKET PORT_ID WARMUP SECONDS [--field opackets]
                    [--windows K] [--also PORT:FIELD]... [--cpu] [--json]
      Wait WARMUP seconds, read /ethdev/stats,PORT_ID twice SECONDS apart and
      print the rate of FIELD (default opackets) in packets/s (obytes gives
      bytes/s). With --windows K: K consecutive windows, prints the median.
      --json prints one JSON object with every sample instead; --also adds
      the rates of other counters read at the same instants (e.g. --also
      0:ipackets for what the application received) to the JSON. --cpu adds
      CPU use per window from /proc: the whole machine's busy CPUs
      ("cpu_busy", from /proc/stat), the measured process's ("cpu_proc",
      from /proc/PID/stat of the socket's pid) and the rest ("cpu_others":
      other processes competing for the cores), and "cpu_steal" (time the
      hypervisor gave our vCPUs to others), in CPUs (1.0 = one core).
  telemetry.py wait SOCKET [TIMEOUT]
      Wait until the socket accepts a connection (default 30 s); exit 1 if not.

SOCKET is /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2 for a root process.
Exit codes: 0 done, 1 error (message on stderr), 2 usage.

Protocol (lib/telemetry/telemetry.c): SOCK_SEQPACKET unix socket; on connect
the server sends {"version": ..., "pid": ..., "max_output_len": N}; each
message sent is one command, each reply is one JSON object {COMMAND: DATA}
of at most max_output_len bytes.
"""

import json
import os
import socket
import sys
import time

DEFAULT_MAX_LEN = 16384


class TelemetryError(Exception):
    pass


class Telemetry:
    """One connection to a DPDK telemetry v2 socket."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise TelemetryError(f"cannot connect to {path}: {e.strerror or e}") from e
        # The first message is the server's info; it also tells the reply cap.
        self.info = self._recv(DEFAULT_MAX_LEN)
        self.max_len = int(self.info.get("max_output_len", DEFAULT_MAX_LEN))
        self.pid = self.info.get("pid")

    def _recv(self, size):
        try:
            data = self.sock.recv(size)
        except socket.timeout as e:
            raise TelemetryError(f"no reply from {self.path} (timed out)") from e
        if not data:
            raise TelemetryError(f"{self.path} closed the connection "
                                 "(too many clients, or the process is exiting)")
        try:
            return json.loads(data.decode())
        except ValueError as e:
            raise TelemetryError(f"bad JSON from {self.path}: {data[:200]!r}") from e

    def command(self, cmd):
        """Send one command; return the reply object (the whole {cmd: data})."""
        self.sock.send(cmd.encode())
        return self._recv(self.max_len)

    def value(self, cmd):
        """The data part of a reply; raises if the command is unknown or failed."""
        reply = self.command(cmd)
        key = cmd.split(",", 1)[0]
        if key not in reply or reply[key] is None:
            raise TelemetryError(f"command {cmd!r} failed: reply {json.dumps(reply)[:300]}")
        return reply[key]

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def port_counter(tel, port, field):
    stats = tel.value(f"/ethdev/stats,{port}")
    if field not in stats:
        raise TelemetryError(f"/ethdev/stats,{port} has no field {field!r} "
                             f"(has {sorted(stats)})")
    return int(stats[field])


def _cpu_busy_ticks():
    """(busy, steal) clock ticks of all CPUs together; busy = user + nice +
    system + irq + softirq (steal, the time a hypervisor ran something else
    on our vCPUs, apart)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    return v[0] + v[1] + v[2] + v[5] + v[6], (v[7] if len(v) > 7 else 0)


def _proc_ticks(pid):
    """utime + stime of a process (all its threads), clock ticks; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(rest[11]) + int(rest[12])  # fields 14, 15 of proc(5)


def measure_rate(path, port, warmup, seconds, field="opackets", windows=1, also=(), cpu=False):
    """Rate of an ethdev counter over WINDOWS consecutive windows of SECONDS
    after a warm-up of WARMUP seconds.

    ALSO is a list of (port, field) counters read at the same points (e.g.
    the RX port's ipackets, to see what the application dropped); each
    window then has their rates in 'also' as {"PORT:FIELD": rate}.
    With CPU true each window also has 'cpu_busy', 'cpu_proc' and
    'cpu_others' (CPUs in use: the machine, the measured process, the rest).
    Returns a dict with every sample; 'rate' is the median of the windows'
    rates (counts per second over the exact time between two replies,
    monotonic clock, midpoint of each request/reply round trip).
    """
    also = list(also)
    with Telemetry(path) as tel:
        port_counter(tel, port, field)  # fail early on a bad port or field
        for p, f in also:
            port_counter(tel, p, f)
        time.sleep(warmup)

        def sample():
            ta = time.monotonic()
            c = port_counter(tel, port, field)
            tb = time.monotonic()
            extra = [port_counter(tel, p, f) for p, f in also]
            if cpu:
                extra += [*_cpu_busy_ticks(), _proc_ticks(tel.pid) or 0]
            return (ta + tb) / 2, c, extra

        points = [sample()]
        for _ in range(windows):
            time.sleep(seconds)
            points.append(sample())
        pid = tel.pid
    wins = []
    for (t0, c0, e0), (t1, c1, e1) in zip(points, points[1:]):
        w = {"count0": c0, "count1": c1, "delta": c1 - c0,
             "seconds": t1 - t0, "rate": (c1 - c0) / (t1 - t0)}
        if also:
            w["also"] = {f"{p}:{f}": (b - a) / (t1 - t0)
                         for (p, f), a, b in zip(also, e0, e1)}
        if cpu:
            hz = os.sysconf("SC_CLK_TCK")
            busy = (e1[-3] - e0[-3]) / hz / (t1 - t0)
            steal = (e1[-2] - e0[-2]) / hz / (t1 - t0)
            proc = (e1[-1] - e0[-1]) / hz / (t1 - t0)
            w["cpu_busy"], w["cpu_proc"], w["cpu_others"] = busy, proc, max(0.0, busy - proc)
            w["cpu_steal"] = steal
        wins.append(w)
    rates = sorted(w["rate"] for w in wins)
    mid = len(rates) // 2
    median = rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2
    return {"port": port, "field": field, "pid": pid, "warmup": warmup,
            "rate": median, "windows": wins}


def wait_socket(path, timeout):
    deadline = time.monotonic() + timeout
    last = "socket not there yet"
    while time.monotonic() < deadline:
        if os.path.exists(path):
            try:
                with Telemetry(path, timeout=2.0):
                    return True
            except TelemetryError as e:
                last = str(e)
        time.sleep(0.2)
    raise TelemetryError(f"{path}: not ready after {timeout} s ({last})")


def usage():
    sys.stderr.write(__doc__)
    sys.exit(2)


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        usage()
    try:
        if argv[0] == "rate":
            args = argv[1:]
            field = "opackets"
            windows = 1
            as_json = False
            if "--json" in args:
                args.remove("--json")
                as_json = True
            if "--field" in args:
                i = args.index("--field")
                if i + 1 >= len(args):
                    usage()
                field = args[i + 1]
                del args[i:i + 2]
            if "--windows" in args:
                i = args.index("--windows")
                if i + 1 >= len(args):
                    usage()
                windows = int(args[i + 1])
                del args[i:i + 2]
                if windows < 1:
                    raise TelemetryError("--windows must be >= 1")
            cpu = False
            if "--cpu" in args:
                args.remove("--cpu")
                cpu = True
            also = []
            while "--also" in args:
                i = args.index("--also")
                if i + 1 >= len(args) or ":" not in args[i + 1]:
                    usage()
                p, f = args[i + 1].split(":", 1)
                also.append((int(p), f))
                del args[i:i + 2]
            if len(args) != 4:
                usage()
            path, port, warmup, seconds = args[0], int(args[1]), float(args[2]), float(args[3])
            if warmup < 0 or seconds <= 0:
                raise TelemetryError("WARMUP must be >= 0 and SECONDS > 0")
            r = measure_rate(path, port, warmup, seconds, field, windows, also, cpu)
            if as_json:
                print(json.dumps(r))
            else:
                print(f"{r['rate']:.0f}")
        elif argv[0] == "wait":
            timeout = float(argv[2]) if len(argv) > 2 else 30.0
            wait_socket(argv[1], timeout)
        else:
            if len(argv) != 2:
                usage()
            with Telemetry(argv[0]) as tel:
                print(json.dumps(tel.command(argv[1])))
    except TelemetryError as e:
        print(f"telemetry: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"telemetry: bad argument: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (e.g. piped into head)
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
