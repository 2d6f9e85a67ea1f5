package nodeagent

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/batonhq/baton/wire"
)

// DefaultProbeAddr is Config.ProbeAddr's default: loopback, a free port.
const DefaultProbeAddr = "127.0.0.1:0"

// probeWriteTimeout bounds the write of the greeting to one connection, so
// that a prober that never reads cannot hold the listener up.
const probeWriteTimeout = time.Second

// probeListener answers the server's direct probes: every TCP connection
// gets wire.ProbeGreeting(node) and is closed. The server probes a node
// whose liveness beats stopped before it declares it down; a greeting in
// time means the agent is alive, only late. It runs on a goroutine of its
// own, apart from heartbeats and commands, so that an agent busy with those
// (or a node with saturated CPUs) still answers and is not failed over.
type probeListener struct {
	ln       net.Listener
	greeting []byte
	log      *slog.Logger
	done     sync.WaitGroup
}

// listenProbe listens on addr (host:port; port 0 picks a free one) and
// serves probes until Close.
func listenProbe(addr, node string, log *slog.Logger) (*probeListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("probe listener on %s: %w (set another address with --probe-addr)", addr, err)
	}
	p := &probeListener{ln: ln, greeting: []byte(wire.ProbeGreeting(node)), log: log}
	p.done.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address the listener is bound to, as heartbeats report it.
func (p *probeListener) Addr() string { return p.ln.Addr().String() }

func (p *probeListener) serve() {
	defer p.done.Done()
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: keep serving, the
			// next probe may get through.
			p.log.Warn("accepting a probe", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// Answered inline, not on a goroutine per connection: the greeting
		// fits any socket buffer, and the deadline bounds a stuck peer.
		c.SetWriteDeadline(time.Now().Add(probeWriteTimeout))
		if _, err := c.Write(p.greeting); err != nil {
			p.log.Debug("answering a probe", "remote", c.RemoteAddr(), "err", err)
		}
		c.Close()
	}
}

// Close stops the listener and waits for its goroutine.
func (p *probeListener) Close() error {
	err := p.ln.Close()
	p.done.Wait()
	return err
}
