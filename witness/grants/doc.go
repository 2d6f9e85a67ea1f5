// Package grants is the witness's decision core: a table of leases, one per
// cluster name, each held by at most one holder at a time. It is pure: no
// I/O, no clock; every call takes the witness's current time.
//
// The rule:
//
//	free ──Claim(h)──▶ held by h until now+ttl
//	held by h ──Claim(h) (renewal)──▶ held by h until max(old expiry, now+ttl)
//	held by h ──Claim(other)──▶ refused: held by h, remaining time
//	held by h ──Release(h), or now ≥ expiry──▶ free
//
// A renewal never shortens a grant: the holder may already believe the
// longer one (see witness.Holder for the holder's side of the bargain).
//
// Restarts: the witness persists, for every grant, who holds it and the
// longest TTL it was granted with (Durable). A restarted witness cannot know
// how long it was down, and must not trust its wall clock, so Restore
// honours every persisted grant for its full TTL from the restart on: any
// belief a holder formed before the crash ends before that.
package grants
