// Package wire defines every NATS subject and message that Baton's server and
// node agents exchange, once and versioned.
//
// All messages are JSON objects carrying "v" (the protocol version, see
// Version). Decoders reject messages of another version, foreign JSON and
// messages whose required fields are missing, so a stray publisher on a shared
// NATS deployment cannot crash or confuse a server or an agent.
//
// Subjects (NODE is the agent's node name):
//
//	baton.v1.node.NODE.heartbeat  agent → server, every interval: Heartbeat
//	baton.v1.node.NODE.leave      agent → server, on orderly shutdown: Leave
//	baton.v1.node.NODE.cmd        server → agent, request/reply: Command → CommandReply
package wire
