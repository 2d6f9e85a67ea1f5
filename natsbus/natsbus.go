package natsbus

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// EmbeddedConfig configures the embedded NATS server.
type EmbeddedConfig struct {
	// Listen is host:port for clients; port 0 picks a free one. Default
	// 127.0.0.1:4222: the embedded broker serves this machine only unless told.
	Listen string
	// StoreDir holds JetStream's data; required.
	StoreDir string
	// ServerName names the server in logs and JetStream metadata.
	ServerName string
}

// Embedded is a running embedded NATS server with JetStream.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a NATS server with JetStream in this process and
// waits until it accepts connections.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, fmt.Errorf("natsbus: embedded server needs a store dir for JetStream")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("natsbus: listen address %q: %w (want host:port, e.g. 127.0.0.1:4222)", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("natsbus: listen address %q: bad port", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "baton"
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: cfg.ServerName,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: configuring embedded NATS on %s: %w", cfg.Listen, err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("natsbus: embedded NATS did not accept connections on %s within 10s (is the port in use? pick another with --nats-listen)", cfg.Listen)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the embedded server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Connect opens a client connection that reconnects forever, so a restarted
// server or a NATS cluster failover never leaves a Baton process cut off.
func Connect(url, name string) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.Timeout(5*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connecting to NATS at %s: %w", url, err)
	}
	return nc, nil
}
