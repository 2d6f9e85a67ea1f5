// Package witness is the quorum's proxy vote: a small service that hands one
// lease per cluster name to at most one holder at a time — the "quorum disk"
// of VMS and Windows clusters as a network service. In a two-node cluster the
// partition whose leading server holds the witness lease has the witness's
// vote (quorum.Tracker.SetWitness), so it survives losing the other node,
// and two partitions are never both quorate.
//
// It owns:
//   - Server: the HTTP service (`baton witness`), which persists its grants
//     in its data dir before it answers, so a restarted witness never grants
//     a lease that a holder may still believe in (see grants.Restore);
//   - Client: the HTTP client, and Memory, its in-memory twin (both satisfy
//     Witness);
//   - Holder: the holder's side — claims and renews every TTL/3 and believes
//     it holds the lease only until its own clock reads the claim's send time
//     plus 3/4 TTL, so slow networks and clocks that run at different rates
//     (by up to ±10%) cannot make it believe longer than the witness grants.
//
// The decisions live in the pure subpackage grants.
//
//	server A: Holder ── claim/renew every TTL/3 ──▶  baton witness
//	  Granted() until send + 3/4 TTL  ◀── 200 ─────   grants.Table: one holder
//	                                                  per cluster, with a TTL;
//	server B: Holder ── claim ───────────────────▶   DATA_DIR/witness-grants.json
//	  refused: holder A, expires_in_ms ◀── 409 ───   synced before answering
//
// HTTP API (errors are {"error":{"code","message"}}, as in Baton's REST API):
//
//	POST /v1/witness/claim   {"cluster","holder","ttl_ms"} → 200 {"granted":true,...}
//	                         or 409 {"granted":false,"holder","expires_in_ms"}
//	POST /v1/witness/release {"cluster","holder"} → 200 {"released":true|false}
//	GET  /v1/witness         → 200 {"grants":[{"cluster","holder","ttl_ms","expires_in_ms","held_ms"}]}
package witness
