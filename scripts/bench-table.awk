# Turns `go test -bench` output into tables with ratios against the baseline
# measured in the same run. Placement: BenchmarkPlace/CASE against
# BenchmarkNaivePlace/CASE (decisions/s). Heartbeat: BenchmarkHeartbeat
# against BenchmarkHeartbeatDecodeOnly (µs per heartbeat).
function metric(unit,   i) {
	for (i = 3; i < NF; i++) if ($(i + 1) == unit) return $i
	return ""
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (name ~ /^BenchmarkPlace\//) { c = substr(name, 16); place[c] = metric("decisions/s"); order[++n] = c }
	else if (name ~ /^BenchmarkNaivePlace\//) { c = substr(name, 21); naive[c] = metric("decisions/s") }
	else if (name == "BenchmarkHeartbeat") hb = metric("ns/op")
	else if (name == "BenchmarkHeartbeatDecodeOnly") hbdec = metric("ns/op")
}
END {
	if (n > 0) {
		printf "\nPlacement decisions per second (one core)\n\n"
		printf "| case | Baton placement | naive placer | ratio |\n|---|---:|---:|---:|\n"
		for (i = 1; i <= n; i++) {
			c = order[i]
			r = (naive[c] > 0) ? sprintf("%.1fx", place[c] / naive[c]) : "-"
			printf "| %s | %.0f | %.0f | %s |\n", c, place[c], naive[c], r
		}
	}
	if (hb != "") {
		printf "\nServer cost per heartbeat (100 nodes, 1,000 workloads, 10 per heartbeat)\n\n"
		printf "| | µs per heartbeat | heartbeats/s on one core |\n|---|---:|---:|\n"
		printf "| decode + reconcile (Baton) | %.1f | %.0f |\n", hb / 1000, 1e9 / hb
		if (hbdec != "") printf "| JSON decode only (baseline) | %.1f | %.0f |\n| ratio | %.1fx | |\n", hbdec / 1000, 1e9 / hbdec, hb / hbdec
	}
}
