package nodeagent

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/wire"
)

// probe dials addr and returns what the listener wrote before closing.
func probe(t *testing.T, addr string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestProbeListener(t *testing.T) {
	p, err := listenProbe("127.0.0.1:0", "n7", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := p.Addr()
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q: want the bound loopback address with its real port", addr)
	}

	t.Run("every connection gets the greeting and EOF", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				got, err := probe(t, addr)
				if err != nil || got != wire.ProbeGreeting("n7") {
					t.Errorf("probe = %q, %v; want %q and EOF", got, err, wire.ProbeGreeting("n7"))
				}
			})
		}
		wg.Wait()
	})

	t.Run("a prober that never reads does not block the next", func(t *testing.T) {
		idle, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		if got, err := probe(t, addr); err != nil || got != wire.ProbeGreeting("n7") {
			t.Errorf("probe after an idle connection = %q, %v", got, err)
		}
	})

	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := probe(t, addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("probe after Close: %v, want connection refused (a failed probe at once)", err)
	}
}

func TestProbeListenerBadAddr(t *testing.T) {
	p, err := listenProbe("127.0.0.1:0", "n1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := listenProbe(p.Addr(), "n1", slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a second listener on a taken port succeeded")
	} else if want := "--probe-addr"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say what to do (%s)", err, want)
	}
}
