"""Turns the side-by-side results into docs: the table and targets in
docs/BENCHMARKS.md (between its `side-by-side` markers), the micro-benchmark
output (between its `micro` markers), and docs/bench/ratios.png.

Usage: report.py RESULTS_JSON MICRO_TXT BENCHMARKS_MD RATIOS_PNG
Run by scripts/bench; it only formats what benches/daemon/ measured.
"""

import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def load(path):
    with open(path) as f:
        return json.load(f)


def by_id(results):
    return {s["id"]: s for s in results["scenarios"]}


def total(counts):
    return sum(counts.values()) if isinstance(counts, dict) else None


def fmt(x, digits=2):
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


def counts_text(counts):
    if not isinstance(counts, dict):
        return "—"
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def ratio_of(s):
    """How many times better strongroom is (OpenBao / strongroom for
    lower-is-better, strongroom / OpenBao for higher-is-better)."""
    sr, ob = s.get("strongroom"), s.get("openbao")
    if sr is None or ob is None:
        return None
    if isinstance(sr, dict) and "median" in sr:
        a, b = sr["median"], ob["median"]
    elif isinstance(sr, dict) and "rps" in sr:
        a, b = sr["rps"], ob["rps"]
    else:
        a, b = total(sr["counts"]), total(ob["counts"])
    if not a or not b:
        return None
    return b / a if s["better"] == "lower" else a / b


def timing_rows(results):
    rows = []
    for s in results["scenarios"]:
        sr, ob = s.get("strongroom"), s.get("openbao")
        unit = s["unit"]
        if not sr or s["id"] in FAILOVER_IDS:
            continue
        runs = f'{sr["runs"]}' + (f' / {ob["runs"]}' if ob else "")
        if "median" in sr:
            digits = 2 if unit == "ms" else 1
            rows.append((s["name"], fmt(sr["median"], digits), fmt(sr["p90"], digits),
                         fmt(ob["median"], digits) if ob else "—",
                         fmt(ob["p90"], digits) if ob else "—",
                         ratio_of(s), unit, runs))
        elif unit == "requests":
            # Every run made the same requests (benches/daemon/ checks).
            rows.append((s["name"], counts_text(sr["counts"]), "—",
                         counts_text(ob["counts"]) if ob else "—", "—",
                         ratio_of(s), "requests", runs))
    return rows


FAILOVER_IDS = ("failover_kill9", "failover_sigterm")


def failover_rows(results):
    rows = []
    for s in results["scenarios"]:
        if s["id"] not in FAILOVER_IDS:
            continue
        sr, ob = s.get("strongroom"), s.get("openbao")

        def cells(x):
            if not x:
                return ["—"] * 3
            return [f'{x[k]:,.1f} ms' for k in ("median", "min", "max")]
        r = ratio_of(s)
        runs = (f'{sr["runs"]}' if sr else "—") + (f' / {ob["runs"]}' if ob else "")
        rows.append(f"| {s['name']} | " + " | ".join(cells(sr) + cells(ob))
                    + f" | {fmt(r, 1) + '×' if r else '—'} | {runs} |")
    return rows


def load_rows(results):
    rows = []
    for s in results["scenarios"]:
        if s["unit"] != "load":
            continue
        sr, ob = s.get("strongroom"), s.get("openbao")
        rows.append((s["name"], sr, ob, ratio_of(s)))
    return rows


def targets(results):
    ids = by_id(results)
    out = []

    def get(i, peer, key="median"):
        v = ids.get(i, {}).get(peer)
        return None if v is None else v[key]

    rtt = get("kms_round_trip", "strongroom")
    restart = get("restart_to_unsealed_awskms", "strongroom")
    if restart is not None and rtt is not None:
        bound = 15 + rtt
        out.append(("restart to unsealed, awskms ≤ 15 ms + KMS round trip",
                    f"{restart:.2f} ms ≤ {bound:.2f} ms", restart <= bound))
    r = ratio_of(ids["restart_to_unsealed_awskms"]) if "restart_to_unsealed_awskms" in ids else None
    if r is not None:
        out.append(("restart to unsealed, awskms: at most one seventh of OpenBao's",
                    f"{r:.1f}× faster", r >= 7))
    path = get("kms_requests_to_unsealed", "strongroom", "counts")
    if path is not None:
        out.append(("exactly one KMS request on the path to unsealed",
                    counts_text(path), total(path) == 1))
    r = ratio_of(ids["start_to_answering_shamir"]) if "start_to_answering_shamir" in ids else None
    if r is not None:
        out.append(("Shamir start to answering: at most one tenth of OpenBao's",
                    f"{r:.1f}× faster", r >= 10))
    s16 = ids.get("status_tcp_16")
    if s16 and s16.get("openbao"):
        r = ratio_of(s16)
        p99 = s16["strongroom"]["p99_ms"]
        out.append(("Status throughput ≥ 3× OpenBao's at 16 clients, p99 < 1 ms",
                    f"{r:.2f}×, p99 {p99:.3f} ms", r >= 3 and p99 < 1))
    for i, label, bound, p99_bound in (
            ("kv_read_16", "KV read ≥ 5× OpenBao kv-v2 at 16 clients, p99 < 2 ms", 5, 2),
            ("encrypt_16", "encrypt ≥ 5× OpenBao transit at 16 clients, p99 < 2 ms", 5, 2),
            ("decrypt_16", "decrypt ≥ 5× OpenBao transit at 16 clients, p99 < 2 ms", 5, 2),
            ("kv_write_16", "KV write ≥ 3× OpenBao kv-v2 at 16 clients, durable (fsync) vs not", 3, None)):
        s = ids.get(i)
        if s and s.get("openbao"):
            r = ratio_of(s)
            p99 = s["strongroom"]["p99_ms"]
            met = r >= bound and (p99_bound is None or p99 < p99_bound)
            out.append((label, f"{r:.2f}×, p99 {p99:.3f} ms", met))
    for op, label, bound, p99_bound in (
            ("seal_status", "HTTP sys/seal-status", 3, 2),
            ("kv_read", "HTTP kv v2 read", 5, 2),
            ("encrypt", "HTTP transit encrypt", 5, 2),
            ("decrypt", "HTTP transit decrypt", 5, 2),
            ("kv_write", "HTTP kv v2 write, durable (fsync) vs not", 3, 2)):
        s = ids.get(f"http_{op}_16")
        if s and s.get("openbao") and s.get("strongroom"):
            r = ratio_of(s)
            p99 = s["strongroom"]["p99_ms"]
            out.append((f"{label} ≥ {bound}× OpenBao at 16 clients (wrk on both), p99 < {p99_bound} ms",
                        f"{r:.2f}×, p99 {p99:.3f} ms", r >= bound and p99 < p99_bound))
    for op in ("kv_read", "kv_write", "encrypt", "decrypt"):
        off, on = ids.get(f"http_{op}_16"), ids.get(f"http_{op}_16_audit")
        if off and on and off.get("openbao") and on.get("openbao"):
            r_off, r_on = ratio_of(off), ratio_of(on)
            out.append((f"HTTP {op.replace('_', ' ')} with a file audit device: ratio within 20% of audit off",
                        f"{r_on:.2f}× vs {r_off:.2f}×", r_on >= 0.8 * r_off))
    kill9 = ids.get("failover_kill9")
    if kill9 and kill9.get("strongroom"):
        v = kill9["strongroom"]["median"]
        out.append(("failover after kill -9 ≤ 1 s median", f"{v:,.1f} ms", v <= 1000))
        r = ratio_of(kill9)
        if r is not None:
            out.append(("failover after kill -9 ≥ 10× faster than OpenBao", f"{r:.1f}× faster", r >= 10))
    for i, label in (("pg_kv_write_16", "KV write on PostgreSQL ≥ 3× OpenBao kv-v2 at 16 clients"),
                     ("pg_kv_read_16", "KV read on PostgreSQL ≥ 3× OpenBao kv-v2 at 16 clients")):
        s = ids.get(i)
        if s and s.get("openbao") and s.get("strongroom"):
            r = ratio_of(s)
            out.append((label, f"{r:.2f}×", r >= 3))
    for i, label, bound in (("idle_rss_mlock_off", "idle RSS, mlock off ≤ 16 MiB", 16),
                            ("idle_rss_mlock_on", "idle RSS, mlock on ≤ 32 MiB", 32)):
        v = get(i, "strongroom")
        if v is not None:
            out.append((label, f"{v:.1f} MiB", v <= bound))
    for i, label in (("sigterm_to_exit", "SIGTERM to exit ≤ 50 ms, a client connected"),
                     ("sigterm_to_exit_idle", "SIGTERM to exit ≤ 50 ms, no client")):
        v = get(i, "strongroom")
        if v is not None:
            out.append((label, f"{v:.1f} ms", v <= 50))
    v = get("binary_size", "strongroom")
    if v is not None:
        out.append(("binary ≤ 30 MB", f"{v:.1f} MB", v <= 30))
    return out


def section(results):
    m = results["machine"]
    lines = [
        f'Run of {results["date"]}: {m["cpu"]}, {m["cpus"]} CPUs, Linux {m["kernel"]}. '
        f'strongroom {results["strongroom_version"]} against {results["openbao_version"].splitlines()[0] if results["openbao_version"] else "OpenBao (not installed)"}; '
        f'{results["runs"]} interleaved runs per restart timing, {results["load_seconds"]} s per load point '
        f'in {results["load_rounds"]} rounds; the scenarios took {results["scenario_seconds"]:.0f} s. '
        f'Medians and p90s are over the runs; "runs" counts them (strongroom / OpenBao). '
        f'Ratio: how many times better strongroom is.',
        "",
        "Clean release build of strongroom: "
        + (f'{results["clean_build_seconds"]:.0f} s.' if results.get("clean_build_seconds") is not None
           else "not measured in this run (`scripts/bench --clean-build`)."),
        "",
        "| scenario | strongroom median | p90 | OpenBao median | p90 | ratio | units | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, a, b, c, d, r, unit, runs in timing_rows(results):
        lines.append(f"| {name} | {a} | {b} | {c} | {d} | {fmt(r, 1) + '×' if r else '—'} | {unit} | {runs} |")
    lines += [
        "",
        "Throughput and latency, the server pinned to CPU 0 and the load to CPU 1, "
        "each peer alone on the machine; each cell is the mean over the rounds. "
        "The rows named HTTP use the same protocol and load generator on both peers: Vault's "
        "HTTP API over HTTP/1.1 under `wrk`. In the other rows **the protocols differ**: "
        "strongroom answers gRPC over HTTP/2 (load: the project's raw-HTTP/2 generator in "
        "`benches/daemon/grpc_load.rs`), OpenBao its HTTP API over HTTP/1.1 (load: `wrk`).",
        "",
        "| scenario | strongroom req/s | p50 | p99 | server CPU | client CPU | OpenBao req/s | p50 | p99 | server CPU | client CPU | ratio | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, sr, ob, r in load_rows(results):
        def cells(x):
            # Each cell is the mean over the load rounds.
            if not x:
                return ["—"] * 5
            return [f'{x["rps"]:,.0f}', f'{x["p50_ms"]:.3f} ms', f'{x["p99_ms"]:.3f} ms',
                    f'{x["server_cpu"] * 100:.0f}%', f'{x["client_cpu"] * 100:.0f}%']
        runs = (f'{sr["runs"]}' if sr else "—") + (f' / {ob["runs"]}' if ob else "")
        lines.append(f"| {name} | " + " | ".join(cells(sr) + cells(ob))
                     + f" | {fmt(r, 2) + '×' if r else '—'} | {runs} |")
    failover = failover_rows(results)
    if failover:
        lines += [
            "",
            "Failover on PostgreSQL (three nodes of each peer, one database each on the same "
            "private PostgreSQL): from the signal to the active node until a KV write is "
            "acknowledged (the notes below say whether the writes went to one standby's "
            "address, forwarded, or to each surviving node in turn).",
            "",
            "| scenario | strongroom median | min | max | OpenBao median | min | max | ratio | runs |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += failover
    lines += ["", "| target | measured | |", "|---|---|---|"]
    for label, measured, met in targets(results):
        lines.append(f"| {label} | {measured} | {'met' if met else '**missed**'} |")
    for note in results.get("notes", []):
        lines += ["", f"Note: {note}"]
    lines += ["", "![strongroom against OpenBao: how many times better](bench/ratios.png)"]
    return "\n".join(lines)


def chart(results, path):
    rows = []
    for s in results["scenarios"]:
        r = ratio_of(s)
        if r:
            rows.append((s["name"].split(" (")[0].split(", by action")[0], r))
    if not rows:
        return
    labels, ratios = zip(*reversed(rows))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.2))
    colors = ["#2b8a3e" if r >= 1 else "#c92a2a" for r in ratios]
    ax.barh(labels, ratios, color=colors)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}×"))
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlim(right=max(ratios) * 1.6)  # room for the labels
    for y, r in enumerate(ratios):
        ax.text(r * 1.05, y, f"{r:.1f}×", va="center", fontsize=8)
    ax.set_xlabel("times better than OpenBao 2.6.2 (log scale; > 1: strongroom ahead)")
    ax.set_title(f'strongroom against OpenBao, side by side, {results["date"]}')
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def replace_between(text, name, body):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"BENCHMARKS.md has no {begin} … {end} markers")
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def main():
    results_path, micro_path, md_path, png_path = sys.argv[1:5]
    results = load(results_path)
    with open(micro_path) as f:
        micro = "\n".join(line for line in f.read().splitlines()
                          if line.startswith(("Timer", "crypto", "├", "│", "╰")))
    with open(md_path) as f:
        text = f.read()
    text = replace_between(text, "side-by-side", section(results))
    text = replace_between(text, "micro", "```\n" + micro + "\n```")
    with open(md_path, "w") as f:
        f.write(text)
    chart(results, png_path)


if __name__ == "__main__":
    main()
