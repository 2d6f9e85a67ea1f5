// Package fencetest is the conformance suite for fence drivers. A driver's
// tests call Run with a constructor for a configured driver and a target the
// device really controls; the suite checks the contract of fence.Driver
// (metadata, status, off, on, reboot, unknown targets, cancellation,
// concurrent use) against the real device.
package fencetest
