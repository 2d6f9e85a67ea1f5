package witness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/internal/atomicfile"
	"github.com/batonhq/baton/witness/grants"
)

// StateFile is the file in the data dir that holds the witness's grants.
const StateFile = "witness-grants.json"

// ErrBadState is returned when the state file cannot be read back.
var ErrBadState = errors.New("witness: unreadable state file")

const stateVersion = 1

type stateDoc struct {
	Version int          `json:"version"`
	Grants  []stateGrant `json:"grants"`
}

type stateGrant struct {
	Cluster string `json:"cluster"`
	Holder  string `json:"holder"`
	TTLMS   int64  `json:"ttl_ms"`
}

// encodeState renders the durable records.
func encodeState(recs []grants.Durable) []byte {
	doc := stateDoc{Version: stateVersion, Grants: []stateGrant{}}
	for _, r := range recs {
		doc.Grants = append(doc.Grants, stateGrant{Cluster: r.Cluster, Holder: r.Holder, TTLMS: r.TTL.Milliseconds()})
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return append(b, '\n')
}

// decodeState parses a state file and checks every record.
func decodeState(b []byte) ([]grants.Durable, error) {
	var doc stateDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	if doc.Version != stateVersion {
		return nil, fmt.Errorf("%w: version %d, this witness reads version %d", ErrBadState, doc.Version, stateVersion)
	}
	var out []grants.Durable
	for _, g := range doc.Grants {
		ttl := time.Duration(g.TTLMS) * time.Millisecond
		if !grants.ValidName(g.Cluster) || !grants.ValidName(g.Holder) || g.TTLMS < 1 || ttl > grants.MaxTTL {
			return nil, fmt.Errorf("%w: bad grant %+v", ErrBadState, g)
		}
		out = append(out, grants.Durable{Cluster: g.Cluster, Holder: g.Holder, TTL: ttl})
	}
	return out, nil
}

// readState reads the state file in dir; a missing file means no grants.
func readState(dir string) ([]grants.Durable, error) {
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	recs, err := decodeState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (it must not be deleted while a holder may still believe a grant: wait the longest TTL the holders use, then remove it)", path, err)
	}
	return recs, nil
}

// writeState replaces the state file in dir durably (see atomicfile).
func writeState(dir string, recs []grants.Durable) error {
	if err := atomicfile.Write(filepath.Join(dir, StateFile), encodeState(recs), 0o600); err != nil {
		return fmt.Errorf("witness: saving grants: %w", err)
	}
	return nil
}
