# Turns `go test -bench` output into tables with ratios against the baseline
# measured in the same run. Placement: BenchmarkPlace/CASE (a Cluster) and
# BenchmarkPlaceFunc/CASE (the function Place) against
# BenchmarkNaivePlace/CASE (decisions/s). Trace replay: BenchmarkReplay/
# MODE/PLACER, Baton's strategies beside the random-fit and best-fit
# baselines. Heartbeat: BenchmarkHeartbeat against
# BenchmarkHeartbeatDecodeOnly (µs per heartbeat). Server placement:
# BenchmarkServerPlace/nodes=N/cluster (the server's kept Cluster) against
# BenchmarkServerPlace/nodes=N/function (build the nodes, function Place).
# Fleet: BenchmarkFleet/PHASE, the server process's CPU and memory, the idle
# phase as baseline.
function metric(unit,   i) {
	for (i = 3; i < NF; i++) if ($(i + 1) == unit) return $i
	return ""
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (name ~ /^BenchmarkPlace\//) { c = substr(name, 16); place[c] = metric("decisions/s"); order[++n] = c }
	else if (name ~ /^BenchmarkNaivePlace\//) { c = substr(name, 21); naive[c] = metric("decisions/s") }
	else if (name ~ /^BenchmarkPlaceFunc\//) { c = substr(name, 20); fn[c] = metric("decisions/s") }
	else if (name ~ /^BenchmarkReplay\//) {
		c = substr(name, 17); rorder[++nr] = c
		rdec[c] = metric("decisions/s"); rplaced[c] = metric("placed-%"); rfrag[c] = metric("frag-%")
		ralloc[c] = metric("cpu-alloc-%"); rtasks[c] = metric("tasks")
	}
	else if (name ~ /^BenchmarkFleet\//) {
		c = substr(name, 16); forder[++nf] = c
		fcpu[c] = metric("server-cpu-%"); frss[c] = metric("server-rss-MiB"); fhwm[c] = metric("server-peak-rss-MiB")
		fmsgs[c] = metric("msgs/s"); fsim[c] = metric("simulator-cpu-%"); fwin[c] = metric("window-s")
	}
	else if (name ~ /^BenchmarkServerPlace\//) {
		c = substr(name, 22); p = c; sub(/\/[^\/]*$/, "", c); sub(/^.*\//, "", p)
		if (!(c in sp)) sorder[++ns] = c
		sp[c] = 1; spdec[c, p] = metric("decisions/s")
	}
	else if (name == "BenchmarkHeartbeat") hb = metric("ns/op")
	else if (name == "BenchmarkHeartbeatDecodeOnly") hbdec = metric("ns/op")
}
END {
	if (nr > 0) {
		printf "\nTrace replay, one core (time-order: the trace as recorded; fill: repeated, no departures, until the tasks ask for all the CPU)\n\n"
		printf "| mode/placer | decisions/s | tasks | placed | fragmentation met by arrivals (mean) | CPU allocated at end |\n|---|---:|---:|---:|---:|---:|\n"
		for (i = 1; i <= nr; i++) {
			c = rorder[i]
			printf "| %s | %.0f | %d | %.2f%% | %.2f%% | %.1f%% |\n", c, rdec[c], rtasks[c], rplaced[c], rfrag[c], ralloc[c]
		}
	}
	if (n > 0) {
		printf "\nPlacement decisions per second (one core)\n\n"
		printf "| case | Baton Cluster.Place | Baton Place (function) | naive placer | ratio (Cluster/naive) |\n|---|---:|---:|---:|---:|\n"
		for (i = 1; i <= n; i++) {
			c = order[i]
			r = (naive[c] > 0) ? sprintf("%.1fx", place[c] / naive[c]) : "-"
			f = (fn[c] != "") ? sprintf("%.0f", fn[c]) : "-"
			printf "| %s | %.0f | %s | %.0f | %s |\n", c, place[c], f, naive[c], r
		}
	}
	if (ns > 0) {
		printf "\nPlacement decisions per second through the server, one node's heartbeat between decisions (one core)\n\n"
		printf "| case | server's Cluster | build nodes + function Place (baseline) | ratio |\n|---|---:|---:|---:|\n"
		for (i = 1; i <= ns; i++) {
			c = sorder[i]; kept = spdec[c, "cluster"]; built = spdec[c, "function"]
			r = (built > 0) ? sprintf("%.0fx", kept / built) : "-"
			printf "| %s | %.0f | %.0f | %s |\n", c, kept, built, r
		}
	}
	if (nf > 0) {
		printf "\nOne server process under a simulated fleet (CPU: utime+stime over wall time; the simulator runs in the benchmark process)\n\n"
		printf "| phase | messages/s | server CPU, %% of one core | over idle | server RSS MiB (peak) | simulator CPU %% | window s |\n|---|---:|---:|---:|---:|---:|---:|\n"
		for (i = 1; i <= nf; i++) {
			c = forder[i]
			over = (c != "idle" && fcpu["idle"] != "") ? sprintf("+%.1f", fcpu[c] - fcpu["idle"]) : "-"
			printf "| %s | %.0f | %.1f | %s | %.0f (%.0f) | %.1f | %.0f |\n", c, fmsgs[c], fcpu[c], over, frss[c], fhwm[c], fsim[c], fwin[c]
		}
	}
	if (hb != "") {
		printf "\nServer cost per heartbeat (100 nodes, 1,000 workloads, 10 per heartbeat)\n\n"
		printf "| | µs per heartbeat | heartbeats/s on one core |\n|---|---:|---:|\n"
		printf "| decode + reconcile (Baton) | %.1f | %.0f |\n", hb / 1000, 1e9 / hb
		if (hbdec != "") printf "| JSON decode only (baseline) | %.1f | %.0f |\n| ratio | %.1fx | |\n", hbdec / 1000, 1e9 / hbdec, hb / hbdec
	}
}
