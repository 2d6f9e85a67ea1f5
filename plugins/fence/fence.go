package fence

import (
	"context"
	"errors"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	fenceproto "github.com/batonhq/baton/plugins/fence/proto"
)

// Driver is a fence device: something that can power a cluster node (a
// target) off and on and say whether it is off. Baton calls a driver to make
// sure a failed node runs nothing before its resource groups restart
// elsewhere, so Off must return nil only once the target is really off.
//
// Every method takes a context and must return promptly (with ctx.Err(),
// possibly wrapped) once it is cancelled or its deadline passes. Errors wrap
// one of the sentinels below where one fits; a nil error from Off, On or
// Reboot means the device confirmed the action.
//
// A driver is created unconfigured; Configure gives it its key=value
// parameters (those that Metadata lists) and may be called again to replace
// them; a Configure that fails leaves the previous configuration in place. Methods other than Metadata and Configure return ErrNotConfigured
// before the first successful Configure.
//
// Implementations must be safe for concurrent use.
type Driver interface {
	// Configure checks and stores the driver's parameters. Invalid or missing
	// parameters give an error wrapping ErrInvalidConfig.
	Configure(ctx context.Context, params map[string]string) error
	// Metadata describes the driver and the parameters it takes.
	Metadata(ctx context.Context) (Metadata, error)
	// List returns the targets the device can fence, or ErrUnsupported.
	List(ctx context.Context) ([]Target, error)
	// Status reports whether target is powered on or off.
	Status(ctx context.Context, target string) (PowerState, error)
	// Off powers target off and returns once the device confirms it is off.
	// Powering off a target that is already off succeeds.
	Off(ctx context.Context, target string) error
	// On powers target on, or returns ErrUnsupported.
	On(ctx context.Context, target string) error
	// Reboot powers target off and on again, or returns ErrUnsupported.
	Reboot(ctx context.Context, target string) error
}

// Sentinel errors. Drivers wrap them (fmt.Errorf("...: %w", ErrNotFound));
// callers test them with errors.Is. They survive the trip through gRPC: the
// server shim turns them into status codes and the client shim back.
var (
	// ErrNotFound: the device does not know the target.
	ErrNotFound = errors.New("fence: unknown target")
	// ErrUnsupported: the driver or device cannot do this action.
	ErrUnsupported = errors.New("fence: action not supported")
	// ErrTimeout: the device did not answer or did not reach the requested
	// state in time. When the caller's own deadline passed, the error also
	// wraps context.DeadlineExceeded.
	ErrTimeout = errors.New("fence: timed out")
	// ErrFailed: the device answered and reported a failure (login refused,
	// agent error, power state did not change, ...). The target's state is
	// not known: it must not be treated as fenced.
	ErrFailed = errors.New("fence: device failed")
	// ErrInvalidConfig: Configure got a missing, unknown or malformed
	// parameter.
	ErrInvalidConfig = errors.New("fence: invalid configuration")
	// ErrNotConfigured: a method needing the configuration was called before
	// a successful Configure.
	ErrNotConfigured = errors.New("fence: driver not configured")
	// ErrPluginExited: the plugin process is gone or unreachable.
	ErrPluginExited = errors.New("fence: plugin unavailable")
)

// PowerState is a target's power state as the device reports it.
type PowerState int

// Power states. PowerUnknown is the zero value and is never a successful
// Status answer: a driver that cannot tell returns an error instead.
const (
	PowerUnknown PowerState = iota
	PowerOn
	PowerOff
)

// String returns "on", "off" or "unknown".
func (s PowerState) String() string {
	switch s {
	case PowerOn:
		return "on"
	case PowerOff:
		return "off"
	default:
		return "unknown"
	}
}

// Target is one fenceable node as List reports it.
type Target struct {
	// Name is what Status, Off, On and Reboot take: Baton's node name or
	// the device's plug name.
	Name string
	// Alias is an optional human name the device gives the target.
	Alias string
}

// Metadata describes a driver.
type Metadata struct {
	// Name is the driver's short name, e.g. "ipmi" or "fence-agent:fence_dummy".
	Name string
	// Description is one line saying what the driver fences.
	Description string
	// Parameters lists the keys Configure accepts.
	Parameters []Parameter
}

// Parameter is one key=value parameter a driver accepts.
type Parameter struct {
	Name        string
	Description string
	Required    bool
	// Secret parameters (passwords) must not be logged or shown.
	Secret  bool
	Default string
}

// Handshake is the go-plugin handshake Baton and its fence plugins share. A
// binary started without the cookie in its environment refuses to run as a
// plugin; ProtocolVersion changes when the wire protocol breaks.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "BATON_FENCE_PLUGIN",
	MagicCookieValue: "6f1c0f3e1d9b4a57b0e3c2a8e4d1f9b2",
}

// PluginName is the name of the driver in the plugin map.
const PluginName = "fence"

// PluginMap returns the plugin map for go-plugin. On the plugin side d is
// the driver to serve; on the host side pass nil.
func PluginMap(d Driver) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &GRPCPlugin{Impl: d}}
}

// GRPCPlugin is the go-plugin glue: it registers the server shim on the
// plugin side and builds the client shim on the host side. gRPC only.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the driver served; nil on the host side.
	Impl Driver
}

// GRPCServer registers Impl on s.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("fence: GRPCPlugin.Impl is nil on the plugin side")
	}
	fenceproto.RegisterDriverServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Driver talking to the plugin over c.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &grpcClient{client: fenceproto.NewDriverClient(c)}, nil
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// Unimplemented answers ErrUnsupported to List, On and Reboot (or the
// context's error once it is done). A driver embeds it and implements the
// rest (Configure, Metadata, Status, Off): the least a fence device must do.
type Unimplemented struct{}

// List returns ErrUnsupported.
func (Unimplemented) List(ctx context.Context) ([]Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

// On returns ErrUnsupported.
func (Unimplemented) On(ctx context.Context, _ string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrUnsupported
}

// Reboot returns ErrUnsupported.
func (Unimplemented) Reboot(ctx context.Context, _ string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrUnsupported
}
