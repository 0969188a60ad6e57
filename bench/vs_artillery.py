#!/usr/bin/env python3
"""Helpers of bench/vs-artillery.sh (a benchmark, not a test).

  monitor --out F --port P --timeout S -- CMD...   run CMD in its own process group; sample its
                                                   process tree (CPU, summed RSS) and the TCP
                                                   connections established to port P; write F
  csv USERS_JSON N                                 the first N users' tokens, one a line
  row --tool T --mode M --clients N ...            one table row (JSON) from a tool's report
  table ROWS_JSONL                                 the table of both tools
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# monitor


def proc_table():
    """pid -> (ppid, cpu_s, rss_bytes) for every readable process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
        table[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, rss)
    return table


def tree(table, root):
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def established(port):
    """TCP connections in state ESTABLISHED whose remote end is 127.0.0.1:port (the clients'
    ends of their connections to the server)."""
    try:
        out = subprocess.run(
            ["ss", "-Htn", "state", "established", f"( dst 127.0.0.1:{port} )"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return -1
    return sum(1 for line in out.splitlines() if line.strip())


def monitor(args):
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    log = open(args.log, "wb") if args.log else subprocess.DEVNULL
    # connections to the port that are not the tool's (there should be none)
    baseline = max(0, established(args.port)) if args.port else 0
    started = time.monotonic()
    child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stop = {"signal": None}

    def forward(signum, _frame):
        stop["signal"] = signum
        try:
            os.killpg(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    peak_rss = 0
    cpu_seen = {}  # pid -> last seen CPU seconds (covers descendants that are never reaped)
    peak_conns = 0
    conn_samples = []
    next_conns = 0.0
    timed_out = False
    rusage = None
    while True:
        pid, status, ru = os.wait4(child.pid, os.WNOHANG)
        if pid == child.pid:
            rusage = ru
            break
        now = time.monotonic()
        table = proc_table()
        pids = tree(table, child.pid)
        peak_rss = max(peak_rss, sum(table[p][2] for p in pids))
        for p in pids:
            cpu_seen[p] = table[p][1]
        if args.port and now >= next_conns:
            n = established(args.port)
            n = max(0, n - baseline) if n >= 0 else n
            peak_conns = max(peak_conns, n)
            conn_samples.append([round(now - started, 1), n, round(sum(cpu_seen.values()), 2)])
            next_conns = now + args.conn_every
        if not timed_out and now - started > args.timeout:
            timed_out = True
            os.killpg(child.pid, signal.SIGTERM)
            kill_at = now + 10
        if timed_out and now > kill_at:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(args.every)
    wall = time.monotonic() - started
    try:  # leftovers of the group (a worker that outlived its parent)
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    # wait4's usage covers the child and every descendant it reaped; the samples cover the rest.
    cpu_reaped = rusage.ru_utime + rusage.ru_stime
    # CPU while the tool had connections open (from the last sample before the first connection
    # to the first sample after the last one): without the tool's start-up and shutdown.
    live = [i for i, (_, n, _) in enumerate(conn_samples) if n > 0]
    load_cpu = None
    if live:
        first, last = max(live[0] - 1, 0), min(live[-1] + 1, len(conn_samples) - 1)
        end_cpu = conn_samples[last][2] if last > live[-1] else cpu_reaped
        load_cpu = round(end_cpu - conn_samples[first][2], 3)
    result = {
        "cmd": cmd,
        "load_cpu_s": load_cpu,
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 3),
        "cpu_s": round(max(cpu_reaped, sum(cpu_seen.values())), 3),
        "peak_rss_mb": round(max(peak_rss, rusage.ru_maxrss * 1024) / 2**20, 1),
        "peak_established": peak_conns,
        "established_baseline": baseline,
        "established_samples": conn_samples,
        "timed_out": timed_out,
        "interrupted": stop["signal"] is not None,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    if stop["signal"] is not None:
        sys.exit(130)


# ---------------------------------------------------------------------------------------------
# users


def csv(args):
    users = json.load(open(args.users))["users"]
    if len(users) < args.n:
        sys.exit(f"{args.users} has {len(users)} users, {args.n} needed")
    fields = args.fields.split(",")
    sys.stdout.write("".join(",".join(str(u[f]) for f in fields) + "\n" for u in users[: args.n]))


# ---------------------------------------------------------------------------------------------
# rows


def row(args):
    mon = json.load(open(args.monitor))
    r = {
        "workload": args.workload,
        "tool": args.tool,
        "mode": args.mode,
        "clients": args.clients,
        "intended_rate": args.clients if args.mode == "throughput" else 0,
        "messages_per_client": args.messages,
        "gen_cpu_s": mon["cpu_s"],
        # per-message figures use the CPU of the load window (start-up and shutdown excluded)
        "load_cpu_s": mon["load_cpu_s"] if mon.get("load_cpu_s") is not None else mon["cpu_s"],
        "gen_wall_s": mon["wall_s"],
        "gen_rss_mb": mon["peak_rss_mb"],
        "peak_established": mon["peak_established"],
        "server_cpu_s": args.server_cpu,
        "exit_code": mon["exit_code"],
        "timed_out": mon["timed_out"],
    }
    try:
        if args.tool == "roomrig":
            r.update(from_roomrig(json.load(open(args.report)), args.workload))
        else:
            r.update(from_artillery(json.load(open(args.report))["aggregate"], args.workload))
    except (OSError, ValueError, KeyError) as e:
        r.update({"report_error": f"{type(e).__name__}: {e}", "joined": 0, "sent": 0,
                  "delivered": 0, "errors": 1, "p50_ms": None, "p99_ms": None,
                  "lateness_p99_ms": None})
    r["held"] = min(r["joined"], r["peak_established"]) if r["peak_established"] >= 0 else r["joined"]
    r["connect_rate"] = connect_rate(mon["established_samples"])
    k = args.messages
    if args.mode == "throughput" and k:
        # Every client sends k messages at 1/s; sends L late (p99) stretch those k seconds to
        # k + L: the rate achieved is (messages sent) / (k + L).
        late = (r["lateness_p99_ms"] or 0) / 1000
        r["achieved_rate"] = round(r["sent"] / (k + late), 1)
    else:
        r["achieved_rate"] = 0
    cpu = r["load_cpu_s"]
    r["cpu_us_per_sent"] = round(cpu / r["sent"] * 1e6, 1) if r["sent"] else None
    r["cpu_us_per_delivery"] = round(cpu / r["delivered"] * 1e6, 2) if r["delivered"] else None
    r["gen_cores"] = round(r["gen_cpu_s"] / r["gen_wall_s"], 2) if r["gen_wall_s"] else None
    # Clients at one message per second that one core of generator CPU sustains: messages sent
    # per CPU second of the load window (connecting, joining and heartbeats included).
    r["clients_per_core"] = round(r["sent"] / cpu) if cpu and r["sent"] else None
    r["rss_kib_per_client"] = round(r["gen_rss_mb"] * 1024 / r["held"], 1) if r["held"] else None
    r["saturated"] = saturation(r, args)
    print(json.dumps(r))


def connect_rate(samples):
    """Connections per second from the first connection until 99% of the peak were open."""
    peak = max((n for _, n, _ in samples), default=0)
    if peak <= 0:
        return None
    first = next(i for i, (_, n, _) in enumerate(samples) if n > 0)
    t0 = samples[first - 1][0] if first > 0 else 0.0
    t1, n1, _ = next(x for x in samples if x[1] >= 0.99 * peak)
    return round(n1 / (t1 - t0)) if t1 > t0 else None


def from_roomrig(s, workload="dorm"):
    m = s["metrics"]
    late = m.get("send.lateness", {}).get("co", {})
    connected = s["clients"]["connected"]
    if workload == "voice":
        fan = m.get("send_topic_msg.fanout", {})
        joined = m.get("enter_room.enter_room", {}).get("co", {}).get("count", 0)
        sent = s["events"]["sent_by_operation"].get("send_topic_msg", 0)
    else:
        fan = m.get("message.fanout", {})
        joined = m.get("join_room.last_data", {}).get("co", {}).get("count", 0)
        # events.sent counts join_room and leave_room too: one each per connected client.
        sent = max(0, s["events"]["sent"] - 2 * connected)
    return {
        "joined": joined,
        "sent": sent,
        "delivered": fan.get("raw", {}).get("count", 0),
        "errors": s["clients"]["connect_errors"] + s["clients"]["unexpected_closes"]
        + s["violations"]["total"],
        "p50_ms": fan.get("co", {}).get("p50_ms"),
        "p99_ms": fan.get("co", {}).get("p99_ms"),
        "raw_p50_ms": fan.get("raw", {}).get("p50_ms"),
        "raw_p99_ms": fan.get("raw", {}).get("p99_ms"),
        "lateness_p99_ms": late.get("p99_ms"),
        "verdict": s["verdict"]["status"],
        "tool_cpu_s": s["driver"]["cpu_s"],
    }


def from_artillery(a, workload="dorm"):
    c, sm = a.get("counters", {}), a.get("summaries", {})
    w = workload  # the processor's counters are named after the workload (dorm.js, voice.js)
    fan = sm.get(f"{w}.fanout", {})
    late = sm.get(f"{w}.send_lateness", {})
    errors = sum(v for k, v in c.items() if k.startswith("errors.")) + c.get(f"{w}.error", 0)
    return {
        "joined": c.get(f"{w}.joined", 0),
        "sent": c.get(f"{w}.sent", 0),
        "delivered": c.get(f"{w}.received", 0),
        "errors": errors,
        "error_kinds": {k: v for k, v in c.items() if k.startswith("errors.")},
        "vusers_failed": c.get("vusers.failed", 0),
        "unmatched": c.get(f"{w}.unmatched", 0),
        "p50_ms": fan.get("p50"),
        "p99_ms": fan.get("p99"),
        "raw_p50_ms": fan.get("p50"),
        "raw_p99_ms": fan.get("p99"),
        "lateness_p99_ms": late.get("p99"),
        "verdict": "",
    }


def saturation(r, args):
    """Why this step shows the tool saturated ('' if it kept up)."""
    why = []
    if r.get("report_error"):
        why.append("no report")
    if r["timed_out"]:
        why.append("timed out")
    if r["errors"]:
        why.append(f"{r['errors']} errors")
    if r["held"] < r["clients"]:
        why.append(f"held {r['held']} of {r['clients']}")
    if r["mode"] == "throughput":
        # (in the capacity run, where only the clients held count, the verdict is not used)
        if r.get("verdict") == "invalid":
            why.append("roomrig verdict invalid (fell behind its schedule)")
        if r["achieved_rate"] < args.min_rate * r["intended_rate"]:
            why.append(f"rate {r['achieved_rate']:.0f}/s < {args.min_rate:.0%} of {r['intended_rate']}/s")
        if r["p99_ms"] is None or r["p99_ms"] > args.p99_limit_ms:
            why.append(f"p99 {r['p99_ms']} ms > {args.p99_limit_ms:g} ms")
    return "; ".join(why)


# ---------------------------------------------------------------------------------------------
# table


def fmt(v, spec="{:,.0f}", none="—"):
    return none if v is None else spec.format(v)


def table(args):
    rows = [json.loads(line) for line in open(args.rows) if line.strip()]
    head = ["workload", "tool", "clients", "held", "connects/s", "msgs/s (intended)", "gen CPU s load (all)",
            "CPU µs/msg sent", "CPU µs/delivery", "clients/core", "gen RSS MB (KiB/client)",
            "p50 / p99 ms", "errors", "saturated"]
    out = []
    for r in rows:
        wl = r.get("workload", "dorm")
        if r["mode"] == "capacity":
            work, rate = f"{wl} capacity (join, hold)", "—"
        else:
            work = f"{wl} throughput {r['clients']:,}"
            rate = f"{fmt(r['achieved_rate'])} ({r['intended_rate']:,})"
        lat = "—" if r["p50_ms"] is None else f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
        if r["tool"] == "roomrig" and r.get("raw_p99_ms") is not None and r["mode"] == "throughput":
            lat += f" (raw {r['raw_p50_ms']:.2f} / {r['raw_p99_ms']:.2f})"
        out.append([
            work, r["tool"], f"{r['clients']:,}", f"{r['held']:,}", fmt(r.get("connect_rate")), rate,
            f"{r['load_cpu_s']:.1f} ({r['gen_cpu_s']:.1f})",
            fmt(r["cpu_us_per_sent"], "{:,.1f}") if r["mode"] == "throughput" else "—",
            fmt(r["cpu_us_per_delivery"], "{:,.2f}") if r["mode"] == "throughput" else "—",
            fmt(r["clients_per_core"]) if r["mode"] == "throughput" else "—",
            f"{r['gen_rss_mb']:.0f} ({fmt(r['rss_kib_per_client'], '{:.1f}')})",
            lat, f"{r['errors']:,}", r["saturated"] or "no",
        ])
    widths = [max(len(h), *(len(o[i]) for o in out)) if out else len(h) for i, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(o, widths)) + " |" for o in out]
    print("\n".join(lines))

    for wl in dict.fromkeys(r.get("workload", "dorm") for r in rows):
        headline([r for r in rows if r.get("workload", "dorm") == wl], wl)


def headline(rows, wl):
    """Each tool's largest step that did not saturate, and the ratios, for one workload."""
    best = {}
    for r in rows:
        if r["mode"] == "throughput" and not r["saturated"]:
            b = best.get(r["tool"])
            if b is None or r["clients"] > b["clients"]:
                best[r["tool"]] = r
    cap = {r["tool"]: r for r in rows if r["mode"] == "capacity"}
    print()
    for tool in ("roomrig", "artillery"):
        b = best.get(tool)
        sat = [r for r in rows if r["tool"] == tool and r["mode"] == "throughput" and r["saturated"]]
        line = f"{wl:<5} {tool:<9} largest step that kept up: "
        line += f"{b['clients']:,} clients ({b['achieved_rate']:,.0f} msgs/s)" if b else "none"
        if sat:
            line += f"; saturated at {sat[0]['clients']:,} ({sat[0]['saturated']})"
        if tool in cap:
            line += f"; capacity: held {cap[tool]['held']:,} of {cap[tool]['clients']:,}"
        print(line)
    same = [(r, q) for r in rows for q in rows if r["tool"] == "roomrig" and q["tool"] == "artillery"
            and r["mode"] == "throughput" and q["mode"] == "throughput" and r["clients"] == q["clients"]
            and not q["saturated"] and r["cpu_us_per_sent"] and q["cpu_us_per_sent"]]
    if same:
        r, q = max(same, key=lambda p: p[0]["clients"])
        print(f"{wl}: at {r['clients']:,} clients (largest step Artillery kept up with): Artillery uses "
              f"{q['cpu_us_per_sent'] / r['cpu_us_per_sent']:.1f}x roomrig's CPU per message sent, "
              f"{q['cpu_us_per_delivery'] / r['cpu_us_per_delivery']:.1f}x per delivery; roomrig holds "
              f"{r['clients_per_core'] / q['clients_per_core']:.1f}x the clients per core")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("monitor")
    m.add_argument("--out", required=True)
    m.add_argument("--log")
    m.add_argument("--port", type=int, default=0)
    m.add_argument("--timeout", type=float, default=3600)
    m.add_argument("--every", type=float, default=0.5, help="process sampling period, s")
    m.add_argument("--conn-every", type=float, default=1.0, help="connection sampling period, s")
    m.add_argument("cmd", nargs=argparse.REMAINDER)
    c = sub.add_parser("csv")
    c.add_argument("users")
    c.add_argument("n", type=int)
    c.add_argument("--fields", default="token", help="columns, comma-separated (a users.json field each)")
    r = sub.add_parser("row")
    r.add_argument("--workload", default="dorm", choices=["dorm", "voice"])
    r.add_argument("--tool", required=True, choices=["roomrig", "artillery"])
    r.add_argument("--mode", required=True, choices=["capacity", "throughput"])
    r.add_argument("--clients", type=int, required=True)
    r.add_argument("--messages", type=int, default=0, help="messages per client")
    r.add_argument("--monitor", required=True)
    r.add_argument("--report", required=True)
    r.add_argument("--server-cpu", type=float, default=0)
    r.add_argument("--min-rate", type=float, default=0.9)
    r.add_argument("--p99-limit-ms", type=float, default=1000)
    t = sub.add_parser("table")
    t.add_argument("rows")
    a = p.parse_args()
    {"monitor": monitor, "csv": csv, "row": row, "table": table}[a.what](a)


if __name__ == "__main__":
    main()
