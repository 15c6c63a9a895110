"""Turns compare.sh's JSON lines into the results section of
docs/performance.md (markdown tables, median of the runs with min–max) and
two gnuplot PNGs: memory per idle session against session count, and chat
latency against offered rate."""

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

BEGIN = "<!-- compare.sh results: begin -->"
END = "<!-- compare.sh results: end -->"
SERVERS = ("parley", "ejabberd", "prosody")


def load(paths):
    """Results by (server, case); a server present in a later file replaces
    what earlier files said about it."""
    runs = defaultdict(list)  # (server, case) -> [result]
    for path in paths:
        records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        for server in {record["server"] for record in records}:
            for key in [key for key in runs if key[0] == server]:
                del runs[key]
        for record in records:
            runs[(record["server"], record["case"])].append(record["result"])
    return runs


def values(runs, server, case, key, scale=1.0):
    out = []
    for result in runs.get((server, case), []):
        if key in result and not result.get("timed_out"):
            out.append(result[key] * scale)
    return out


def cell(numbers, digits=0):
    if not numbers:
        return "–"
    median = statistics.median(numbers)
    fmt = f"{{:,.{digits}f}}"
    if len(numbers) == 1:
        return fmt.format(median)
    return f"{fmt.format(median)} ({fmt.format(min(numbers))}–{fmt.format(max(numbers))})"


def median_or_none(numbers):
    return statistics.median(numbers) if numbers else None


def hold_points(runs, server):
    for result in runs.get((server, "hold-starttls"), []):
        return result.get("points", [])
    return []


def command_output(*command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_description(limits, elapsed):
    cpu = ""
    for line in command_output("lscpu").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    versions = {package: command_output("dpkg-query", "-W", "-f=${Version}", package)
                for package in ("ejabberd", "prosody", "erlang-base", "lua5.4")}
    revision = command_output("git", "rev-parse", "--short", "HEAD")
    return "\n".join([
        f"- CPU: {cpu or platform.processor()}, {os.cpu_count()} logical cores; "
        f"{memory_kib / 1048576:.1f} GiB RAM; Linux {platform.release()}",
        f"- Servers pinned to core 0, parley-bench to core 1 (taskset); all traffic over loopback",
        f"- Parley {revision} (Release), ejabberd {versions['ejabberd']} (Erlang {versions['erlang-base']}), "
        f"Prosody {versions['prosody']} (epoll backend)",
        f"- Open-file limit (hard, not raisable in this container): {limits.get('fds', '?')}",
        f"- Load average when the report was written: {Path('/proc/loadavg').read_text().split()[:3]}",
        f"- compare.sh took {int(elapsed) // 60} min {int(elapsed) % 60} s",
    ])


def ratio_line(name, parley, other, better_when_higher, target):
    if parley is None or other is None or other == 0 or parley == 0:
        return f"| {name} | – | {target} | not measured |"
    ratio = parley / other if better_when_higher else other / parley
    goal = float(target.split("×")[0].lstrip("≥ "))
    verdict = "met" if ratio >= goal else "**not met**"
    return f"| {name} | {ratio:.2f}× | {target} | {verdict} |"


def plot(runs, plots_dir, sweep_rates):
    plots_dir = Path(plots_dir)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        memory_series, latency_series = [], []
        for server in SERVERS:
            points = [p for p in hold_points(runs, server) if "bytes_per_session" in p]
            if points:
                data = scratch / f"memory-{server}.dat"
                data.write_text("".join(f"{p['sessions']} {p['bytes_per_session'] / 1024:.2f}\n" for p in points))
                memory_series.append(f"'{data}' using 1:2 with linespoints title '{server}'")
            rows = []
            for rate in sweep_rates:
                results = runs.get((server, f"sweep-{rate}"), [])
                if results and "latency_us_p99" in results[0]:
                    r = results[0]
                    rows.append(f"{rate} {r['latency_us_p50'] / 1000:.3f} {r['latency_us_p99'] / 1000:.3f}\n")
            if rows:
                data = scratch / f"latency-{server}.dat"
                data.write_text("".join(rows))
                latency_series.append(f"'{data}' using 1:3 with linespoints title '{server} p99'")
                latency_series.append(f"'{data}' using 1:2 with linespoints dashtype 2 title '{server} p50'")
        script = ["set terminal png size 900,500", "set grid", "set key top left"]
        if memory_series:
            script += [f"set output '{plots_dir / 'performance-memory.png'}'",
                       "set title 'Server memory per idle STARTTLS session'",
                       "set xlabel 'sessions'", "set ylabel 'KiB per session'", "set logscale x",
                       "plot " + ", ".join(memory_series), "unset logscale x"]
        if latency_series:
            script += [f"set output '{plots_dir / 'performance-latency.png'}'",
                       "set title 'Chat latency against offered rate (plain TCP)'",
                       "set xlabel 'offered messages/s'", "set ylabel 'latency (ms)'",
                       "set logscale xy", "plot " + ", ".join(latency_series)]
        if memory_series or latency_series:
            subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True, nargs="+")
    parser.add_argument("--doc", required=True)
    parser.add_argument("--plots", required=True)
    parser.add_argument("--limits", default="")
    parser.add_argument("--elapsed", type=float, default=0)
    parser.add_argument("--quick", default="")
    args = parser.parse_args()
    runs = load(args.results)
    limits = dict(item.split("=", 1) for item in args.limits.split(",") if "=" in item)
    servers = [s for s in SERVERS if any(key[0] == s for key in runs)]
    sweep_rates = sorted({int(case.split("-")[1]) for (_, case) in runs if case.startswith("sweep-")})

    def row(label, case, key, scale=1.0, digits=0):
        return f"| {label} | " + " | ".join(cell(values(runs, s, case, key, scale), digits) for s in servers) + " |"

    def first(case, key):
        return {s: (runs.get((s, case)) or [{}])[0].get(key) for s in servers}

    common = first("chat-common-rate", "offered_rate")
    pairs = first("chat-tcp", "pairs")
    lines = [BEGIN, ""]
    if args.quick:
        lines += ["**QUICK run (tiny sizes, one run each): these numbers only show that the script works.**", ""]
    lines += ["### Machine", "", machine_description(limits, args.elapsed), "",
              "### Results", "",
              "Median of the runs, (min–max) when there were several. Login and chat use "
              "SCRAM-SHA-1 (the mechanism all three offer).", "",
              "| scenario | " + " | ".join(servers) + " |",
              "|---|" + "---|" * len(servers),
              row("logins/s, plain TCP", "login-tcp", "logins_per_second"),
              row("logins/s, STARTTLS", "login-starttls", "logins_per_second"),
              row(f"chat msg/s, plain TCP, {next(iter(pairs.values()), '?')} pairs flat out", "chat-tcp",
                  "messages_per_second"),
              row("chat msg/s, STARTTLS, flat out", "chat-starttls", "messages_per_second"),
              row("chat p99 latency flat out, plain TCP (ms)", "chat-tcp", "latency_us_p99", 0.001, 1),
              row(f"chat p50 latency at {next(iter(common.values()), '?')} msg/s (ms)", "chat-common-rate",
                  "latency_us_p50", 0.001, 2),
              row(f"chat p99 latency at {next(iter(common.values()), '?')} msg/s (ms)", "chat-common-rate",
                  "latency_us_p99", 0.001, 2),
              row(f"chat max latency at {next(iter(common.values()), '?')} msg/s (ms)", "chat-common-rate",
                  "latency_us_max", 0.001, 1),
              row("presence stanzas/s (20 contacts each)", "presence", "presences_per_second"),
              ]
    def cpu_per_message(server):
        per_message = []
        for result in runs.get((server, "chat-tcp"), []):
            if result.get("server_cpu_seconds") and result.get("delivered"):
                per_message.append(result["server_cpu_seconds"] / result["delivered"] * 1e6)
        return per_message

    lines.append("| server CPU per delivered message, plain TCP flat out (µs) | " +
                 " | ".join(cell(cpu_per_message(s), 1) for s in servers) + " |")
    # What one fully used core would deliver: independent of whether the
    # generator or the server was the bottleneck of the run.
    lines.append("| server capacity, plain TCP: msg/s per core of server CPU (1 / the row above) | " +
                 " | ".join(cell([1e6 / us for us in cpu_per_message(s) if us > 0]) for s in servers) + " |")
    processes = {r.get("processes", 1) for (srv, case), rs in runs.items() if case.startswith("chat-") for r in rs}
    if processes and max(processes) > 1:
        lines.append(f"| generator processes in the flat-out chat runs | " + " | ".join(
            str(max((r.get("processes", 1) for r in runs.get((s, "chat-tcp"), [])), default=1)) for s in servers) + " |")
    lost = {s: sum(r.get("lost", 0) for (srv, case), rs in runs.items() if srv == s and case.startswith(("chat", "sweep"))
                   for r in rs) for s in servers}
    dup = {s: sum(r.get("duplicated", 0) for (srv, case), rs in runs.items()
                  if srv == s and case.startswith(("chat", "sweep")) for r in rs) for s in servers}
    lines.append("| lost / duplicated messages, all chat runs | " +
                 " | ".join(f"{lost[s]} / {dup[s]}" for s in servers) + " |")
    for target in sorted({p["target"] for s in servers for p in hold_points(runs, s)}):
        cells = []
        for s in servers:
            match = [p for p in hold_points(runs, s) if p["target"] == target]
            if match and "bytes_per_session" in match[0]:
                p = match[0]
                reached = "" if p["sessions"] == target else f" (only {p['sessions']:,} sessions)"
                cells.append(f"{p['bytes_per_session'] / 1024:.1f}{reached}")
            else:
                cells.append("–")
        lines.append(f"| server KiB per idle STARTTLS session at {target:,} | " + " | ".join(cells) + " |")
    targets = sorted({p["target"] for s in servers for p in hold_points(runs, s)})
    for low, high in zip(targets, targets[1:]):
        cells = []
        for s in servers:
            points = {p["target"]: p for p in hold_points(runs, s) if "server_rss_bytes" in p}
            if low in points and high in points and points[high]["sessions"] > points[low]["sessions"]:
                grown = points[high]["server_rss_bytes"] - points[low]["server_rss_bytes"]
                cells.append(f"{grown / (points[high]['sessions'] - points[low]['sessions']) / 1024:.1f}")
            else:
                cells.append("–")
        lines.append(f"| server KiB per added idle STARTTLS session, {low:,}→{high:,} | " + " | ".join(cells) + " |")
    failures = []
    for (server, case), results in sorted(runs.items()):
        for result in results:
            if result.get("error") or result.get("failures") or result.get("timed_out") or \
                    result.get("complete") is False:
                failures.append(f"- {server} {case}: " + ", ".join(
                    f"{k}={result[k]}" for k in ("error", "failures", "first_error", "timed_out", "complete")
                    if k in result))
    if failures:
        lines += ["", "Runs with failures (their numbers are left out of the medians only when they timed out):",
                  ""] + failures[:30]

    def med(server, case, key):
        return median_or_none(values(runs, server, case, key))

    if "parley" in servers:
        lines += ["", "### Targets", "", "| target | measured | goal | verdict |", "|---|---|---|---|"]
        for other, goal in (("ejabberd", "≥5×"), ("prosody", "≥10×")):
            if other in servers:
                lines.append(ratio_line(f"chat throughput plain TCP vs {other} (delivered msg/s)",
                                        med("parley", "chat-tcp", "messages_per_second"),
                                        med(other, "chat-tcp", "messages_per_second"), True, goal))
                lines.append(ratio_line(f"chat capacity plain TCP vs {other} (msg/s per core of server CPU)",
                                        median_or_none([1e6 / us for us in cpu_per_message("parley") if us > 0]),
                                        median_or_none([1e6 / us for us in cpu_per_message(other) if us > 0]),
                                        True, goal))
        if "ejabberd" in servers:
            lines.append(ratio_line("chat throughput STARTTLS vs ejabberd", med("parley", "chat-starttls", "messages_per_second"),
                                    med("ejabberd", "chat-starttls", "messages_per_second"), True, "≥3×"))
            lines.append(ratio_line("p99 latency at the common rate vs ejabberd (ejabberd's / Parley's)",
                                    med("parley", "chat-common-rate", "latency_us_p99"),
                                    med("ejabberd", "chat-common-rate", "latency_us_p99"), False, "≥5×"))

        def per_session(server, target):
            match = [p for p in hold_points(runs, server) if p["target"] == target and "bytes_per_session" in p]
            return match[0]["bytes_per_session"] if match else None
        if "ejabberd" in servers:
            lines.append(ratio_line("idle TLS session memory at 10k vs ejabberd (ejabberd's / Parley's)",
                                    per_session("parley", 10000), per_session("ejabberd", 10000), False, "≥3×"))
        parley_10k = per_session("parley", 10000)
        if parley_10k is not None:
            verdict = "met" if parley_10k <= 10240 else "**not met**"
            lines.append(f"| Parley idle TLS session at 10k | {parley_10k / 1024:.1f} KiB | ≤10 KiB | {verdict} |")
        reached = max((p["sessions"] for p in hold_points(runs, "parley")), default=0)
        lines.append(f"| concurrent TLS sessions | {reached:,} | 100,000 | "
                     f"{'met' if reached >= 100000 else '**not met** (see limits)'} |")
        total_lost = sum(lost.values()) + sum(dup.values())
        lines.append(f"| lost or duplicated messages (every server) | {total_lost} | 0 | "
                     f"{'met' if total_lost == 0 else '**not met**'} |")
    plot(runs, args.plots, sweep_rates)
    lines += ["", "![memory per idle session](performance-memory.png)", "",
              "![latency against offered rate](performance-latency.png)", "", END]

    doc = Path(args.doc)
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + "\n".join(lines) + tail
    else:
        text += "\n" + "\n".join(lines) + "\n"
    doc.write_text(text)


if __name__ == "__main__":
    main()
