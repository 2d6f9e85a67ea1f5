package fence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	fenceproto "github.com/batonhq/baton/plugins/fence/proto"
)

// grpcServer is the plugin-side shim: it calls the driver and turns its
// errors into gRPC status codes (toStatus).
type grpcServer struct {
	fenceproto.UnimplementedDriverServer
	impl Driver
}

func (s *grpcServer) Configure(ctx context.Context, req *fenceproto.ConfigureRequest) (*fenceproto.ConfigureResponse, error) {
	if err := s.impl.Configure(ctx, req.GetParams()); err != nil {
		return nil, toStatus(err)
	}
	return &fenceproto.ConfigureResponse{}, nil
}

func (s *grpcServer) Metadata(ctx context.Context, _ *fenceproto.MetadataRequest) (*fenceproto.MetadataResponse, error) {
	md, err := s.impl.Metadata(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &fenceproto.MetadataResponse{Name: md.Name, Description: md.Description}
	for _, p := range md.Parameters {
		resp.Parameters = append(resp.Parameters, &fenceproto.Parameter{
			Name: p.Name, Description: p.Description, Required: p.Required, Secret: p.Secret, Default: p.Default,
		})
	}
	return resp, nil
}

func (s *grpcServer) List(ctx context.Context, _ *fenceproto.ListRequest) (*fenceproto.ListResponse, error) {
	ts, err := s.impl.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &fenceproto.ListResponse{}
	for _, t := range ts {
		resp.Targets = append(resp.Targets, &fenceproto.Target{Name: t.Name, Alias: t.Alias})
	}
	return resp, nil
}

func (s *grpcServer) Status(ctx context.Context, req *fenceproto.TargetRequest) (*fenceproto.StatusResponse, error) {
	st, err := s.impl.Status(ctx, req.GetTarget())
	if err != nil {
		return nil, toStatus(err)
	}
	var ps fenceproto.PowerState
	switch st {
	case PowerOn:
		ps = fenceproto.PowerState_POWER_STATE_ON
	case PowerOff:
		ps = fenceproto.PowerState_POWER_STATE_OFF
	default:
		return nil, toStatus(fmt.Errorf("%w: driver reported unknown power state for target %q without an error", ErrFailed, req.GetTarget()))
	}
	return &fenceproto.StatusResponse{State: ps}, nil
}

func (s *grpcServer) Off(ctx context.Context, req *fenceproto.TargetRequest) (*fenceproto.PowerResponse, error) {
	if err := s.impl.Off(ctx, req.GetTarget()); err != nil {
		return nil, toStatus(err)
	}
	return &fenceproto.PowerResponse{}, nil
}

func (s *grpcServer) On(ctx context.Context, req *fenceproto.TargetRequest) (*fenceproto.PowerResponse, error) {
	if err := s.impl.On(ctx, req.GetTarget()); err != nil {
		return nil, toStatus(err)
	}
	return &fenceproto.PowerResponse{}, nil
}

func (s *grpcServer) Reboot(ctx context.Context, req *fenceproto.TargetRequest) (*fenceproto.PowerResponse, error) {
	if err := s.impl.Reboot(ctx, req.GetTarget()); err != nil {
		return nil, toStatus(err)
	}
	return &fenceproto.PowerResponse{}, nil
}

// codeOf pairs each sentinel with its gRPC code. Order matters where an
// error wraps several (ErrTimeout with context.DeadlineExceeded).
var codeOf = []struct {
	err  error
	code codes.Code
}{
	{ErrNotFound, codes.NotFound},
	{ErrUnsupported, codes.Unimplemented},
	{ErrTimeout, codes.DeadlineExceeded},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
	{ErrInvalidConfig, codes.InvalidArgument},
	{ErrNotConfigured, codes.FailedPrecondition},
	{ErrFailed, codes.Internal},
	{ErrPluginExited, codes.Unavailable},
}

// toStatus converts a driver error into a gRPC status error whose code
// carries the sentinel and whose message is the driver's full message.
// Errors wrapping no sentinel become codes.Unknown.
func toStatus(err error) error {
	for _, c := range codeOf {
		if errors.Is(err, c.err) {
			return status.Error(c.code, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// deadlineSlack is how close to the caller's deadline a DeadlineExceeded
// status counts as that deadline.
const deadlineSlack = 50 * time.Millisecond

// statusError is an error that came back over gRPC: the driver's message,
// unwrapping to the sentinels its status code stands for.
type statusError struct {
	msg  string
	errs []error
}

func (e *statusError) Error() string   { return e.msg }
func (e *statusError) Unwrap() []error { return e.errs }

// fromStatus maps an error from a gRPC call back to the package's sentinels,
// as Nomad's grpcutils.HandleGrpcErr does: the status code picks the
// sentinel, the message is kept. When ctx is done the context's error is
// wrapped as well, so errors.Is(err, context.Canceled) holds for a call the
// caller cancelled. Unknown codes wrap ErrFailed: a fence whose outcome is
// unknown must never count as a success.
func fromStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("fence plugin %s: %w: %w", method, ErrFailed, err)
	}
	var errs []error
	switch st.Code() {
	case codes.NotFound:
		errs = append(errs, ErrNotFound)
	case codes.Unimplemented:
		errs = append(errs, ErrUnsupported)
	case codes.DeadlineExceeded:
		errs = append(errs, ErrTimeout)
	case codes.Canceled:
		// The context error below says which.
	case codes.InvalidArgument:
		errs = append(errs, ErrInvalidConfig)
	case codes.FailedPrecondition:
		errs = append(errs, ErrNotConfigured)
	case codes.Unavailable:
		errs = append(errs, ErrPluginExited)
	default:
		errs = append(errs, ErrFailed)
	}
	cerr := ctx.Err()
	if dl, ok := ctx.Deadline(); cerr == nil && ok && st.Code() == codes.DeadlineExceeded && time.Until(dl) < deadlineSlack {
		// gRPC's timers (the client's, or the server's from the encoded,
		// rounded-down grpc-timeout) can fire an instant before the
		// context's own: this is the caller's deadline.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		// Whatever the code (the plugin may have seen the cancellation of
		// the stream before its own deadline), the caller's deadline passed.
		if errors.Is(cerr, context.DeadlineExceeded) && st.Code() != codes.DeadlineExceeded {
			errs = append(errs, ErrTimeout)
		}
		errs = append(errs, cerr)
	} else if st.Code() == codes.Canceled {
		errs = append(errs, context.Canceled)
	}
	msg := st.Message()
	if msg == "" {
		msg = errors.Join(errs...).Error()
	}
	return &statusError{msg: fmt.Sprintf("fence plugin %s: %s", method, msg), errs: errs}
}

// grpcClient is the host-side shim: a Driver whose methods are gRPC calls.
type grpcClient struct {
	client fenceproto.DriverClient
}

var _ Driver = (*grpcClient)(nil)

func (c *grpcClient) Configure(ctx context.Context, params map[string]string) error {
	_, err := c.client.Configure(ctx, &fenceproto.ConfigureRequest{Params: params})
	return fromStatus(ctx, "Configure", err)
}

func (c *grpcClient) Metadata(ctx context.Context) (Metadata, error) {
	resp, err := c.client.Metadata(ctx, &fenceproto.MetadataRequest{})
	if err != nil {
		return Metadata{}, fromStatus(ctx, "Metadata", err)
	}
	md := Metadata{Name: resp.GetName(), Description: resp.GetDescription()}
	for _, p := range resp.GetParameters() {
		md.Parameters = append(md.Parameters, Parameter{
			Name: p.GetName(), Description: p.GetDescription(), Required: p.GetRequired(), Secret: p.GetSecret(), Default: p.GetDefault(),
		})
	}
	return md, nil
}

func (c *grpcClient) List(ctx context.Context) ([]Target, error) {
	resp, err := c.client.List(ctx, &fenceproto.ListRequest{})
	if err != nil {
		return nil, fromStatus(ctx, "List", err)
	}
	ts := make([]Target, 0, len(resp.GetTargets()))
	for _, t := range resp.GetTargets() {
		ts = append(ts, Target{Name: t.GetName(), Alias: t.GetAlias()})
	}
	return ts, nil
}

func (c *grpcClient) Status(ctx context.Context, target string) (PowerState, error) {
	resp, err := c.client.Status(ctx, &fenceproto.TargetRequest{Target: target})
	if err != nil {
		return PowerUnknown, fromStatus(ctx, "Status", err)
	}
	switch resp.GetState() {
	case fenceproto.PowerState_POWER_STATE_ON:
		return PowerOn, nil
	case fenceproto.PowerState_POWER_STATE_OFF:
		return PowerOff, nil
	default:
		return PowerUnknown, fmt.Errorf("fence plugin Status %q: %w: plugin answered power state %v", target, ErrFailed, resp.GetState())
	}
}

func (c *grpcClient) Off(ctx context.Context, target string) error {
	_, err := c.client.Off(ctx, &fenceproto.TargetRequest{Target: target})
	return fromStatus(ctx, "Off", err)
}

func (c *grpcClient) On(ctx context.Context, target string) error {
	_, err := c.client.On(ctx, &fenceproto.TargetRequest{Target: target})
	return fromStatus(ctx, "On", err)
}

func (c *grpcClient) Reboot(ctx context.Context, target string) error {
	_, err := c.client.Reboot(ctx, &fenceproto.TargetRequest{Target: target})
	return fromStatus(ctx, "Reboot", err)
}
