// Package quorum decides whether a partition of the cluster may act, with
// votes as in OpenVMS and Windows clusters and corosync's votequorum.
//
// It is pure: the caller tells it which nodes exist with how many votes,
// which of them it can currently reach (live), and whether the witness has
// granted its vote to this partition; it answers with a Status. It does no
// I/O: the witness (a lock on shared storage, or a small witness service
// handing out a lease) is implemented by an adapter, which reports the grant
// with SetWitness.
//
// The rule:
//
//	expected = max(Config.ExpectedVotes, Σ votes of every known node) + witness votes
//	needed   = floor(expected/2) + 1
//	quorate  = live node votes + (witness votes if granted to us) ≥ needed
//	           and, with WaitForAll, all expected node votes were once live at the same time
//
// Expected votes are raised to the votes of every node ever known (as
// corosync does) and stay there while the node is down, so a partition cannot
// become quorate by forgetting the nodes it lost; Forget removes a node that
// an operator has taken out of the cluster. Because every partition computes
// the same expected votes and the witness gives its vote to at most one of
// them, two disjoint partitions are never quorate together (see the property
// test).
//
//	              live votes ≥ needed (and all seen once, WaitForAll)
//	not quorate ───────────────────────────────────────────────▶ quorate
//	            ◀───────────────────────────────────────────────
//	              live votes < needed (node lost, votes lowered, witness lost)
package quorum
