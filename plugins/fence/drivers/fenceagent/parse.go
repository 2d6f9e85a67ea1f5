package fenceagent

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/batonhq/baton/plugins/fence"
)

// Limits on what the parsers accept from an agent.
const (
	maxTargets    = 10000
	maxNameLen    = 256
	maxParameters = 1000
)

// ErrBadOutput is wrapped when an agent's output cannot be understood.
var ErrBadOutput = errors.New("fenceagent: unexpected agent output")

// ParseList parses the output of action=list: one target per line, "plug"
// or "plug,alias" (fencing.py's default separator). Blank lines, lines with
// control characters or an over-long or empty name are skipped, as are
// repeated names (the first wins); at most 10,000 targets are kept.
func ParseList(out []byte) []fence.Target {
	var ts []fence.Target
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() && len(ts) < maxTargets {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, alias, _ := strings.Cut(line, ",")
		name, alias = strings.TrimSpace(name), strings.TrimSpace(alias)
		if !validName(name) || seen[name] {
			continue
		}
		if !validText(alias) || len(alias) > maxNameLen {
			alias = ""
		}
		seen[name] = true
		ts = append(ts, fence.Target{Name: name, Alias: alias})
	}
	return ts
}

// ParseStatus finds fencing.py's "Status: ON" or "Status: OFF" line in the
// output of action=status. It returns PowerUnknown when there is none.
func ParseStatus(out []byte) fence.PowerState {
	st := fence.PowerUnknown
	for _, line := range strings.Split(string(out), "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "Status:")
		if !ok {
			continue
		}
		switch strings.ToUpper(strings.TrimSpace(v)) {
		case "ON":
			st = fence.PowerOn
		case "OFF":
			st = fence.PowerOff
		}
	}
	return st
}

// AgentMetadata is what an agent's action=metadata says about it.
type AgentMetadata struct {
	Name       string
	ShortDesc  string
	LongDesc   string
	Parameters []AgentParameter
	Actions    []string
}

// AgentParameter is one parameter of an agent.
type AgentParameter struct {
	Name       string
	Required   bool
	Deprecated bool
	Type       string
	Default    string
	ShortDesc  string
}

// HasParameter reports whether the agent takes the named parameter.
func (m *AgentMetadata) HasParameter(name string) bool {
	for _, p := range m.Parameters {
		if p.Name == name {
			return true
		}
	}
	return false
}

// HasAction reports whether the agent lists the named action.
func (m *AgentMetadata) HasAction(name string) bool {
	for _, a := range m.Actions {
		if a == name {
			return true
		}
	}
	return false
}

type xmlAgent struct {
	XMLName    xml.Name `xml:"resource-agent"`
	Name       string   `xml:"name,attr"`
	ShortDesc  string   `xml:"shortdesc,attr"`
	LongDesc   string   `xml:"longdesc"`
	Parameters []struct {
		Name       string `xml:"name,attr"`
		Required   string `xml:"required,attr"`
		Deprecated string `xml:"deprecated,attr"`
		Content    struct {
			Type    string `xml:"type,attr"`
			Default string `xml:"default,attr"`
		} `xml:"content"`
		ShortDesc []struct {
			Lang string `xml:"lang,attr"`
			Text string `xml:",chardata"`
		} `xml:"shortdesc"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name string `xml:"name,attr"`
	} `xml:"actions>action"`
}

// ParseMetadata parses the XML of action=metadata (the OCF resource-agent
// format). Text before the XML (warnings some agents print to stdout) is
// skipped. Parameters with invalid or repeated names are dropped.
func ParseMetadata(out []byte) (*AgentMetadata, error) {
	i := bytes.Index(out, []byte("<resource-agent"))
	if i < 0 {
		return nil, fmt.Errorf("%w: no <resource-agent> element in metadata", ErrBadOutput)
	}
	var x xmlAgent
	dec := xml.NewDecoder(bytes.NewReader(out[i:]))
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("%w: metadata XML: %v", ErrBadOutput, err)
	}
	if !validName(x.Name) {
		return nil, fmt.Errorf("%w: metadata names the agent %q", ErrBadOutput, x.Name)
	}
	md := &AgentMetadata{Name: x.Name, ShortDesc: cleanText(x.ShortDesc), LongDesc: cleanText(x.LongDesc)}
	seen := map[string]bool{}
	for _, p := range x.Parameters {
		if len(md.Parameters) >= maxParameters {
			break
		}
		if !validParam(p.Name) || seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		ap := AgentParameter{
			Name:       p.Name,
			Required:   p.Required == "1",
			Deprecated: p.Deprecated == "1",
			Type:       cleanText(p.Content.Type),
			Default:    cleanText(p.Content.Default),
		}
		for _, d := range p.ShortDesc {
			if d.Lang == "" || d.Lang == "en" {
				ap.ShortDesc = cleanText(d.Text)
				break
			}
		}
		md.Parameters = append(md.Parameters, ap)
	}
	seenAct := map[string]bool{}
	for _, a := range x.Actions {
		if validParam(strings.ReplaceAll(a.Name, "-", "_")) && !seenAct[a.Name] {
			seenAct[a.Name] = true
			md.Actions = append(md.Actions, a.Name)
		}
	}
	return md, nil
}

// validName: non-empty, at most 256 bytes, valid UTF-8, no spaces or
// control characters.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validParam: a parameter key an agent's stdin protocol can carry and the
// SDK accepts: lower-case letters, digits and _, starting with a letter.
func validParam(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_'):
		default:
			return false
		}
	}
	return true
}

func validText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// cleanText collapses white space and drops invalid UTF-8 and control
// characters, capped at 1,024 bytes.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1024], "")
	}
	return s
}
