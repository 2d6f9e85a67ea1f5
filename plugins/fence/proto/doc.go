// Package fenceproto holds the gRPC wire protocol between Baton and a fencing
// driver plugin: fence.proto and the Go code protoc generates from it
// (`make generate`). Only package fence's shims use it; drivers implement
// fence.Driver and never see these types.
package fenceproto
