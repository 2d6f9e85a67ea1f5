package fence

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	fenceproto "github.com/batonhq/baton/plugins/fence/proto"
)

// Serve runs d as a go-plugin server over gRPC. A driver binary's main calls
// it and nothing else; it returns when the host kills or closes the plugin.
// Run outside a host (without the handshake cookie), it prints a message and
// exits with status 1.
func Serve(d Driver) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginMap(d),
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}

// Config says how Open starts a driver binary.
type Config struct {
	// Path is the driver binary.
	Path string
	// Args are extra command-line arguments for it.
	Args []string
	// Logger receives the plugin's log lines and go-plugin's own, at debug
	// level. Nil discards them.
	Logger *slog.Logger
	// StartTimeout bounds the handshake; 0 means 30 s or ctx's deadline,
	// whichever comes first.
	StartTimeout time.Duration
}

// Plugin is a running driver: a Driver plus the means to stop it. The
// methods of Driver are gRPC calls to the plugin; once the plugin is gone
// they fail with ErrPluginExited.
type Plugin struct {
	Driver
	pid   int
	close func()
	once  sync.Once
}

// Pid is the plugin's process ID (0 for ServeInProcess).
func (p *Plugin) Pid() int { return p.pid }

// Close stops the plugin: for Open, it asks the process to exit, kills it
// after two seconds if it has not and waits for it. Close is idempotent.
func (p *Plugin) Close() error {
	p.once.Do(p.close)
	return nil
}

// Open starts the driver binary at cfg.Path as a go-plugin subprocess over
// gRPC and returns it. The caller must Close it; the process also gets
// SIGKILL if the host dies (Pdeathsig, Linux). Drivers run the programs
// they need (fence agents, ipmitool) in their own process groups and kill
// them when a call's context ends.
func Open(ctx context.Context, cfg Config) (*Plugin, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("fence: open plugin: %w: no driver binary path", ErrInvalidConfig)
	}
	if _, err := os.Stat(cfg.Path); err != nil {
		return nil, fmt.Errorf("fence: open plugin %s: %w", cfg.Path, err)
	}
	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fence: open plugin %s: %w", cfg.Path, err)
	}
	cmd := exec.Command(cfg.Path, cfg.Args...)
	setPdeathsig(cmd)
	logger := newHCLogger(cfg.Logger, filepath.Base(cfg.Path))
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginMap(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		StartTimeout:     timeout,
		// Managed clients are killed by plugin.CleanupClients; Baton closes
		// each Plugin itself instead.
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("fence: start plugin %s: %w", cfg.Path, err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("fence: plugin %s: dispense %q: %w", cfg.Path, PluginName, err)
	}
	d, ok := raw.(Driver)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("fence: plugin %s: dispensed %T, not a fence.Driver", cfg.Path, raw)
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	return &Plugin{Driver: d, pid: pid, close: client.Kill}, nil
}

// ServeInProcess serves d over real gRPC on a Unix socket in a temporary
// directory, inside this process, and returns a client for it. It runs the
// same shims and error mapping as Open without building a binary: tests use
// it. Close stops the server and removes the socket.
func ServeInProcess(ctx context.Context, d Driver) (*Plugin, error) {
	dir, err := os.MkdirTemp("", "baton-fence-")
	if err != nil {
		return nil, fmt.Errorf("fence: serve in process: %w", err)
	}
	sock := filepath.Join(dir, "plugin.sock")
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("fence: serve in process: %w", err)
	}
	srv := grpc.NewServer()
	fenceproto.RegisterDriverServer(srv, &grpcServer{impl: d})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln) // returns when srv stops
	}()
	conn, err := grpc.Dial("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		<-served
		os.RemoveAll(dir)
		return nil, fmt.Errorf("fence: serve in process: dial %s: %w", sock, err)
	}
	return &Plugin{
		Driver: &grpcClient{client: fenceproto.NewDriverClient(conn)},
		close: func() {
			conn.Close()
			srv.Stop()
			<-served
			os.RemoveAll(dir)
		},
	}, nil
}

// newHCLogger adapts an slog.Logger to the hclog.Logger go-plugin wants:
// every line goes to l at debug level with the plugin's name.
func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	if l == nil {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Debug,
		Output: &slogWriter{l: l, name: name},
	})
}

// slogWriter forwards whole lines to an slog.Logger.
type slogWriter struct {
	mu   sync.Mutex
	l    *slog.Logger
	name string
	buf  []byte
}

func (w *slogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.l.Debug("fence plugin", "plugin", w.name, "line", string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a runaway line: flush it as it is
		w.l.Debug("fence plugin", "plugin", w.name, "line", string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
