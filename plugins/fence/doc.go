// Package fence is Baton's fencing plugin SDK: the Driver interface a fence
// device implements (off, on, reboot, status, list, metadata, each with a
// context), its sentinel errors, and the hashicorp/go-plugin plumbing that
// runs a driver as a separate process speaking gRPC.
//
// It owns:
//
//   - fence.go: Driver, its value types, the sentinels, the handshake and the
//     plugin map;
//   - grpc.go: the gRPC client and server shims and the mapping between
//     sentinels and gRPC status codes;
//   - proto/: the wire protocol (generated code committed);
//   - plugin.go: Serve (a driver's main), Open (start a driver binary as a
//     subprocess) and ServeInProcess (a driver over real gRPC inside a test).
//
// Drivers live under drivers/, the conformance suite every driver runs in
// fencetest/, and a minimal third-party example in examples/. See README.md.
package fence
