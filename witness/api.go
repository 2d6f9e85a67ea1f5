package witness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/batonhq/baton/witness/grants"
)

// ErrBadRequest is returned for a request body the witness cannot accept;
// the message says what to change.
var ErrBadRequest = errors.New("witness: bad request")

// maxBody bounds a request body.
const maxBody = 64 << 10

// ClaimRequest is the body of POST /v1/witness/claim.
type ClaimRequest struct {
	Cluster string `json:"cluster"`
	Holder  string `json:"holder"`
	TTLMS   int64  `json:"ttl_ms"`
}

// ClaimResponse is the body of a claim's answer: 200 when granted, 409 when
// another holder has the lease (Holder and ExpiresInMS say who and for how
// long at most).
type ClaimResponse struct {
	Granted     bool   `json:"granted"`
	Cluster     string `json:"cluster"`
	Holder      string `json:"holder"`
	ExpiresInMS int64  `json:"expires_in_ms"`
}

// ReleaseRequest is the body of POST /v1/witness/release.
type ReleaseRequest struct {
	Cluster string `json:"cluster"`
	Holder  string `json:"holder"`
}

// ReleaseResponse says whether the release freed the lease; it does not when
// the lease was free, expired or held by someone else.
type ReleaseResponse struct {
	Released bool   `json:"released"`
	Cluster  string `json:"cluster"`
}

// Status is the body of GET /v1/witness.
type Status struct {
	Grants []GrantView `json:"grants"`
}

// GrantView is one unexpired grant.
type GrantView struct {
	Cluster     string `json:"cluster"`
	Holder      string `json:"holder"`
	TTLMS       int64  `json:"ttl_ms"`
	ExpiresInMS int64  `json:"expires_in_ms"`
	HeldMS      int64  `json:"held_ms"` // since this holder got it (or since the witness restarted)
}

// Error is the body of every error response.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong: a stable code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// DecodeClaim reads and checks a claim request body.
func DecodeClaim(r io.Reader) (ClaimRequest, error) {
	var req ClaimRequest
	if err := decodeStrict(r, &req); err != nil {
		return ClaimRequest{}, err
	}
	if err := checkNames(req.Cluster, req.Holder); err != nil {
		return ClaimRequest{}, err
	}
	if ttl := time.Duration(req.TTLMS) * time.Millisecond; req.TTLMS < 1 || ttl > grants.MaxTTL {
		return ClaimRequest{}, fmt.Errorf("%w: ttl_ms %d: give the lease's time to live in milliseconds, 1 to %d", ErrBadRequest, req.TTLMS, grants.MaxTTL.Milliseconds())
	}
	return req, nil
}

// DecodeRelease reads and checks a release request body.
func DecodeRelease(r io.Reader) (ReleaseRequest, error) {
	var req ReleaseRequest
	if err := decodeStrict(r, &req); err != nil {
		return ReleaseRequest{}, err
	}
	if err := checkNames(req.Cluster, req.Holder); err != nil {
		return ReleaseRequest{}, err
	}
	return req, nil
}

func checkNames(cluster, holder string) error {
	if !grants.ValidName(cluster) {
		return fmt.Errorf("%w: cluster %q: name the cluster, 1 to %d printable characters", ErrBadRequest, cluster, grants.MaxNameLen)
	}
	if !grants.ValidName(holder) {
		return fmt.Errorf("%w: holder %q: name the holder, 1 to %d printable characters", ErrBadRequest, holder, grants.MaxNameLen)
	}
	return nil
}

// decodeStrict decodes exactly one JSON object with only known fields.
func decodeStrict(r io.Reader, v any) error {
	body, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %v", ErrBadRequest, err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("%w: body larger than %d bytes", ErrBadRequest, maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body is not the expected JSON object: %v", ErrBadRequest, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: body has data after the JSON object", ErrBadRequest)
	}
	return nil
}
