package scheduler

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/batonhq/baton/wire"
)

// TCPProber probes an agent's probe listener: it connects and expects the
// node's greeting. A refused connection fails at once; silence fails at the
// context's deadline.
type TCPProber struct{}

// Probe implements Prober.
func (TCPProber) Probe(ctx context.Context, node, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("probe of %s at %s: %w", node, addr, err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	_ = conn.SetReadDeadline(deadline)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("probe of %s at %s: no greeting: %w", node, addr, err)
	}
	if line != wire.ProbeGreeting(node) {
		return fmt.Errorf("probe of %s at %s: answered by %q, not by its agent", node, addr, line)
	}
	return nil
}
