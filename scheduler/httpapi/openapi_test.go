package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/batonhq/baton/scheduler"
	"github.com/batonhq/baton/scheduler/httpapi"
)

// served is every route the handler serves. A route added to Handler must be
// added here, and then TestOpenAPIRoutes insists that it be documented.
var served = []route{
	{"GET", "/v1/health"},
	{"GET", "/v1/openapi.json"},
	{"GET", "/v1/nodes"},
	{"GET", "/v1/nodes/{name}"},
	{"POST", "/v1/nodes/{name}/drain"},
	{"POST", "/v1/nodes/{name}/undrain"},
	{"GET", "/v1/rebalance/plan"},
	{"GET", "/v1/rebalance/events"},
	{"GET", "/v1/workloads"},
	{"POST", "/v1/workloads"},
	{"GET", "/v1/workloads/{id}"},
	{"DELETE", "/v1/workloads/{id}"},
	{"POST", "/v1/workloads/{id}/migrate"},
	{"GET", "/v1/migrations"},
	{"GET", "/v1/migrations/{id}"},
	{"POST", "/v1/plan"},
	{"GET", "/v1/groups"},
	{"POST", "/v1/groups"},
	{"GET", "/v1/groups/{name}"},
	{"DELETE", "/v1/groups/{name}"},
	{"POST", "/v1/groups/{name}/move"},
	{"POST", "/v1/groups/{name}/reset"},
	{"POST", "/v1/nodes/{name}/fence"},
	{"PUT", "/v1/nodes/{name}/votes"},
	{"GET", "/v1/quorum"},
	{"GET", "/v1/events"},
}

type route struct{ method, path string }

func (r route) String() string { return r.method + " " + r.path }

var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// ---- the document --------------------------------------------------------------

// openAPI is the parsed document with what the tests need to look things up.
type openAPI struct {
	root map[string]any
}

func loadOpenAPI(t testing.TB) *openAPI {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(httpapi.OpenAPI))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if dec.More() {
		t.Fatalf("openapi.json has data after the document")
	}
	return &openAPI{root: root}
}

// operations lists every documented path+method.
func (d *openAPI) operations() []route {
	var out []route
	paths, _ := d.root["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if slices.Contains(httpMethods, strings.ToUpper(m)) {
				out = append(out, route{strings.ToUpper(m), p})
			}
		}
	}
	sortRoutes(out)
	return out
}

func sortRoutes(rs []route) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].String() < rs[j].String() })
}

// operation returns the operation object of a documented route.
func (d *openAPI) operation(r route) (map[string]any, bool) {
	item, ok := d.root["paths"].(map[string]any)[r.path].(map[string]any)
	if !ok {
		return nil, false
	}
	op, ok := item[strings.ToLower(r.method)].(map[string]any)
	return op, ok
}

// response returns the documented response of a route for a status,
// following $ref.
func (d *openAPI) response(r route, status int) (map[string]any, error) {
	op, ok := d.operation(r)
	if !ok {
		return nil, fmt.Errorf("%s is not documented", r)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(status)].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s does not document status %d", r, status)
	}
	return d.deref(resp)
}

// componentResponse returns components.responses[name].
func (d *openAPI) componentResponse(name string) (map[string]any, error) {
	return d.deref(map[string]any{"$ref": "#/components/responses/" + name})
}

// deref follows $ref until it reaches an object without one.
func (d *openAPI) deref(v map[string]any) (map[string]any, error) {
	for range 10 {
		ref, ok := v["$ref"].(string)
		if !ok {
			return v, nil
		}
		target, err := d.resolve(ref)
		if err != nil {
			return nil, err
		}
		v = target
	}
	return nil, fmt.Errorf("$ref chain too long at %v", v["$ref"])
}

// resolve looks up a local JSON pointer such as #/components/schemas/Workload.
func (d *openAPI) resolve(ref string) (map[string]any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q is not local", ref)
	}
	var cur any = d.root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	m, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q is not an object", ref)
	}
	return m, nil
}

// checkResponse validates a response against the documented response: JSON
// content type, the documented headers present, and the body valid against
// the schema, with no undocumented field.
func (d *openAPI) checkResponse(resp map[string]any, got response) []string {
	var problems []string
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		problems = append(problems, fmt.Sprintf("Content-Type %q, want application/json", ct))
	}
	headers, _ := resp["headers"].(map[string]any)
	for name := range headers {
		if got.header.Get(name) == "" {
			problems = append(problems, fmt.Sprintf("documented header %s is missing", name))
		}
	}
	schema, ok := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	if !ok {
		return append(problems, "the response documents no application/json schema")
	}
	dec := json.NewDecoder(bytes.NewReader(got.body))
	dec.UseNumber()
	var body any
	if err := dec.Decode(&body); err != nil {
		return append(problems, fmt.Sprintf("body is not JSON: %v", err))
	}
	return append(problems, d.validate(schema, body, "$", true)...)
}

// ---- a small JSON Schema checker (the OpenAPI 3.0 subset the document uses) ----

// schemaKeywords are the keywords the checker understands; annotations are
// accepted and ignored. lint rejects any other keyword, so the document cannot
// rely on a rule that nothing checks.
var schemaKeywords = map[string]bool{
	"$ref": true, "type": true, "nullable": true, "enum": true, "required": true, "properties": true,
	"additionalProperties": true, "items": true, "minItems": true, "maxItems": true, "pattern": true,
	"minLength": true, "maxLength": true, "minimum": true, "maximum": true, "format": true,
	"description": true, "title": true, "example": true,
}

var knownFormats = map[string]bool{"date-time": true, "int64": true, "int32": true}

// validate reports every way v breaks schema. v is decoded with UseNumber.
// With strict, an object schema that lists properties and says nothing about
// additionalProperties still rejects undocumented fields: the server must not
// send a field the document does not describe.
func (d *openAPI) validate(schema map[string]any, v any, at string, strict bool) []string {
	if ref, ok := schema["$ref"].(string); ok {
		target, err := d.resolve(ref)
		if err != nil {
			return []string{at + ": " + err.Error()}
		}
		return d.validate(target, v, at, strict)
	}
	fail := func(format string, a ...any) []string { return []string{at + ": " + fmt.Sprintf(format, a...)} }
	if v == nil {
		if schema["nullable"] == true {
			return nil
		}
		if _, typed := schema["type"]; typed {
			return fail("null is not allowed (not nullable)")
		}
	}
	var problems []string
	if typ, ok := schema["type"].(string); ok {
		if !hasType(v, typ) {
			return fail("got %s, want %s", jsonType(v), typ)
		}
	}
	if enum, ok := schema["enum"].([]any); ok {
		if !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
			problems = append(problems, fail("%v is not one of %v", v, enum)...)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		for _, r := range asStrings(schema["required"]) {
			if _, ok := v[r]; !ok {
				problems = append(problems, fail("required field %q is missing", r)...)
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if ps, ok := props[k].(map[string]any); ok {
				problems = append(problems, d.validate(ps, v[k], at+"."+k, strict)...)
				continue
			}
			switch ap := schema["additionalProperties"].(type) {
			case bool:
				if !ap {
					problems = append(problems, fail("field %q is not allowed (additionalProperties: false)", k)...)
				}
			case map[string]any:
				problems = append(problems, d.validate(ap, v[k], at+"."+k, strict)...)
			case nil:
				if strict && props != nil {
					problems = append(problems, fail("field %q is not documented", k)...)
				}
			}
		}
	case []any:
		if n, ok := number(schema["minItems"]); ok && float64(len(v)) < n {
			problems = append(problems, fail("%d items, want at least %v", len(v), n)...)
		}
		if n, ok := number(schema["maxItems"]); ok && float64(len(v)) > n {
			problems = append(problems, fail("%d items, want at most %v", len(v), n)...)
		}
		if items, ok := schema["items"].(map[string]any); ok {
			for i, e := range v {
				problems = append(problems, d.validate(items, e, fmt.Sprintf("%s[%d]", at, i), strict)...)
			}
		}
	case string:
		if p, ok := schema["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				problems = append(problems, fail("bad pattern %q: %v", p, err)...)
			} else if !re.MatchString(v) {
				problems = append(problems, fail("%q does not match %s", v, p)...)
			}
		}
		if n, ok := number(schema["minLength"]); ok && float64(utf8.RuneCountInString(v)) < n {
			problems = append(problems, fail("%q is shorter than %v", v, n)...)
		}
		if n, ok := number(schema["maxLength"]); ok && float64(utf8.RuneCountInString(v)) > n {
			problems = append(problems, fail("%q is longer than %v", v, n)...)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				problems = append(problems, fail("%q is not a date-time: %v", v, err)...)
			}
		}
	case json.Number:
		f, _ := v.Float64()
		if n, ok := number(schema["minimum"]); ok && f < n {
			problems = append(problems, fail("%v is below the minimum %v", v, n)...)
		}
		if n, ok := number(schema["maximum"]); ok && f > n {
			problems = append(problems, fail("%v is above the maximum %v", v, n)...)
		}
		if bits := map[any]int{"int64": 64, "int32": 32}[schema["format"]]; bits != 0 {
			_, err := strconv.ParseInt(v.String(), 10, bits)
			limit := math.Ldexp(1, bits-1)
			if err != nil && (f != math.Trunc(f) || f < -limit || f >= limit) {
				problems = append(problems, fail("%v is not an int%d", v, bits)...)
			}
		}
	}
	return problems
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err == nil {
			return true
		}
		f, err := n.Float64() // e.g. 1e3 or 2.0 are integers too
		return err == nil && f == math.Trunc(f) && !math.IsInf(f, 0)
	}
	return false
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func asStrings(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// lint checks a schema for what the checker cannot take on trust: known
// keywords and types, $ref without siblings (OpenAPI 3.0 ignores them) and
// resolving, patterns that compile, and required fields that are declared.
// It records every schema reached through a $ref in used.
func (d *openAPI) lint(schema map[string]any, at string, used map[string]bool) []string {
	var problems []string
	fail := func(format string, a ...any) { problems = append(problems, at+": "+fmt.Sprintf(format, a...)) }
	if ref, ok := schema["$ref"].(string); ok {
		if len(schema) != 1 {
			fail("$ref has siblings, which OpenAPI 3.0 ignores")
		}
		target, err := d.resolve(ref)
		if err != nil {
			fail("%v", err)
			return problems
		}
		if !used[ref] {
			used[ref] = true
			problems = append(problems, d.lint(target, ref, used)...)
		}
		return problems
	}
	for k := range schema {
		if !schemaKeywords[k] {
			fail("unknown keyword %q", k)
		}
	}
	if typ, ok := schema["type"]; ok && !slices.Contains([]any{"object", "array", "string", "integer", "number", "boolean"}, typ) {
		fail("unknown type %v", typ)
	}
	if f, ok := schema["format"].(string); ok && !knownFormats[f] {
		fail("unknown format %q", f)
	}
	if p, ok := schema["pattern"].(string); ok {
		if _, err := regexp.Compile(p); err != nil {
			fail("pattern %q does not compile: %v", p, err)
		}
	}
	props, _ := schema["properties"].(map[string]any)
	for _, r := range asStrings(schema["required"]) {
		if _, ok := props[r]; !ok {
			fail("required field %q is not among the properties", r)
		}
	}
	for name, p := range props {
		problems = append(problems, d.lint(p.(map[string]any), at+"."+name, used)...)
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if sub, ok := schema[k].(map[string]any); ok {
			problems = append(problems, d.lint(sub, at+"."+k, used)...)
		}
	}
	return problems
}

// ---- tests ---------------------------------------------------------------------

// TestSchemaChecker keeps the checker honest: it must reject what the
// document forbids, or every test built on it passes vacuously.
func TestSchemaChecker(t *testing.T) {
	doc := &openAPI{root: mustParse(t, `{"components":{"schemas":{
		"Thing": {"type":"object","required":["id","tags"],"additionalProperties":false,"properties":{
			"id":{"type":"string","pattern":"^t-[0-9]+$"},
			"tags":{"type":"array","maxItems":2,"items":{"type":"string"}},
			"size":{"type":"integer","format":"int32","minimum":0},
			"ratio":{"type":"number","maximum":1},
			"when":{"type":"string","format":"date-time"},
			"kind":{"type":"string","enum":["a","b"]},
			"note":{"type":"string","nullable":true},
			"labels":{"type":"object","additionalProperties":{"type":"string"}},
			"child":{"$ref":"#/components/schemas/Child"}}},
		"Child": {"type":"object","required":["ok"],"properties":{"ok":{"type":"boolean"}}}}}}`).(map[string]any)}
	thing := doc.root["components"].(map[string]any)["schemas"].(map[string]any)["Thing"].(map[string]any)
	cases := []struct {
		name    string
		value   string
		strict  bool
		wantErr string // "" means valid
	}{
		{"minimal", `{"id":"t-1","tags":[]}`, true, ""},
		{"full", `{"id":"t-1","tags":["x"],"size":3,"ratio":0.5,"when":"2026-01-02T03:04:05.5Z","kind":"a","note":null,
			"labels":{"k":"v"},"child":{"ok":true}}`, true, ""},
		{"integer written as 3.0", `{"id":"t-1","tags":[],"size":3.0}`, true, ""},
		{"not an object", `[]`, true, "got array, want object"},
		{"missing required", `{"id":"t-1"}`, true, `required field "tags" is missing`},
		{"wrong type", `{"id":1,"tags":[]}`, true, "$.id: got number, want string"},
		{"unknown field", `{"id":"t-1","tags":[],"extra":1}`, false, `field "extra" is not allowed`},
		{"pattern", `{"id":"x","tags":[]}`, true, `"x" does not match`},
		{"too many items", `{"id":"t-1","tags":["a","b","c"]}`, true, "3 items, want at most 2"},
		{"bad item", `{"id":"t-1","tags":[1]}`, true, "$.tags[0]: got number, want string"},
		{"fraction for integer", `{"id":"t-1","tags":[],"size":1.5}`, true, "got number, want integer"},
		{"beyond int32", `{"id":"t-1","tags":[],"size":4294967296}`, true, "is not an int32"},
		{"below minimum", `{"id":"t-1","tags":[],"size":-1}`, true, "below the minimum"},
		{"above maximum", `{"id":"t-1","tags":[],"ratio":1.5}`, true, "above the maximum"},
		{"bad date-time", `{"id":"t-1","tags":[],"when":"yesterday"}`, true, "is not a date-time"},
		{"not in enum", `{"id":"t-1","tags":[],"kind":"c"}`, true, "is not one of"},
		{"null where not nullable", `{"id":"t-1","tags":null}`, true, "null is not allowed"},
		{"map value type", `{"id":"t-1","tags":[],"labels":{"k":1}}`, true, "$.labels.k: got number, want string"},
		{"through $ref", `{"id":"t-1","tags":[],"child":{}}`, true, `$.child: required field "ok" is missing`},
		{"undocumented field, strict", `{"id":"t-1","tags":[],"child":{"ok":true,"new":1}}`, true, `field "new" is not documented`},
		{"undocumented field, lenient", `{"id":"t-1","tags":[],"child":{"ok":true,"new":1}}`, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problems := doc.validate(thing, mustParse(t, tc.value), "$", tc.strict)
			switch {
			case tc.wantErr == "" && len(problems) > 0:
				t.Errorf("valid value rejected: %v", problems)
			case tc.wantErr != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.wantErr) }):
				t.Errorf("problems %q, want one containing %q", problems, tc.wantErr)
			}
		})
	}

	lintCases := []struct {
		name, schema, wantErr string
	}{
		{"clean", `{"type":"object","required":["a"],"properties":{"a":{"type":"string"}}}`, ""},
		{"typo in keyword", `{"type":"object","requried":["a"]}`, `unknown keyword "requried"`},
		{"required not declared", `{"type":"object","required":["b"],"properties":{"a":{"type":"string"}}}`, `required field "b" is not among the properties`},
		{"dangling $ref", `{"$ref":"#/components/schemas/Nope"}`, "does not resolve"},
		{"$ref with siblings", `{"$ref":"#/components/schemas/Child","description":"x"}`, "$ref has siblings"},
		{"bad type", `{"type":"int"}`, "unknown type"},
		{"bad pattern", `{"type":"string","pattern":"("}`, "does not compile"},
	}
	for _, tc := range lintCases {
		t.Run("lint/"+tc.name, func(t *testing.T) {
			problems := doc.lint(mustParse(t, tc.schema).(map[string]any), "$", map[string]bool{})
			switch {
			case tc.wantErr == "" && len(problems) > 0:
				t.Errorf("clean schema flagged: %v", problems)
			case tc.wantErr != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.wantErr) }):
				t.Errorf("problems %q, want one containing %q", problems, tc.wantErr)
			}
		})
	}
}

func mustParse(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return v
}

// TestOpenAPIDocument checks the document as a document: the fixed facts,
// every schema well formed and used, and what the server sends is the file.
func TestOpenAPIDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	onDisk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, httpapi.OpenAPI) {
		t.Errorf("the embedded document differs from openapi.json")
	}
	h := newHarness(t)
	if got := h.do("GET", "/v1/openapi.json", ""); !bytes.Equal(got.body, httpapi.OpenAPI) {
		t.Errorf("GET /v1/openapi.json does not serve the document")
	}

	if v, _ := doc.root["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		t.Errorf("openapi %q, want 3.0.x", v)
	}
	info, _ := doc.root["info"].(map[string]any)
	if info["version"] != "1" || info["title"] == nil {
		t.Errorf("info %v, want a title and version \"1\"", info)
	}

	used := map[string]bool{}
	var problems []string
	for _, r := range doc.operations() {
		op, _ := doc.operation(r)
		if s, _ := op["summary"].(string); s == "" {
			problems = append(problems, r.String()+": no summary")
		}
		if rb, ok := op["requestBody"].(map[string]any); ok {
			schema := rb["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			problems = append(problems, doc.lint(schema, r.String()+" request", used)...)
		}
		responses, _ := op["responses"].(map[string]any)
		if len(responses) == 0 {
			problems = append(problems, r.String()+": no responses")
		}
		for status := range responses {
			code, err := strconv.Atoi(status)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: response %q is not a status code", r, status))
				continue
			}
			if ref, ok := responses[status].(map[string]any)["$ref"].(string); ok {
				used[ref] = true
			}
			resp, err := doc.response(r, code)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if d, _ := resp["description"].(string); d == "" {
				problems = append(problems, fmt.Sprintf("%s %d: no description", r, code))
			}
			schema, ok := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s %d: no application/json schema", r, code))
				continue
			}
			problems = append(problems, doc.lint(schema, fmt.Sprintf("%s %d", r, code), used)...)
		}
	}
	// MethodNotAllowed belongs to no operation; the routes test checks it.
	used["#/components/responses/MethodNotAllowed"] = true
	mna, err := doc.componentResponse("MethodNotAllowed")
	if err != nil {
		t.Fatal(err)
	}
	problems = append(problems, doc.lint(mna["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any), "MethodNotAllowed", used)...)
	for _, kind := range []string{"schemas", "responses"} {
		for name := range doc.root["components"].(map[string]any)[kind].(map[string]any) {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				problems = append(problems, ref+" is never used")
			}
		}
	}
	slices.Sort(problems)
	for _, p := range problems {
		t.Error(p)
	}

	// The request schema is closed and names what is required.
	req, err := doc.resolve("#/components/schemas/WorkloadRequest")
	if err != nil {
		t.Fatal(err)
	}
	if req["additionalProperties"] != false {
		t.Errorf("WorkloadRequest: additionalProperties is %v, want false", req["additionalProperties"])
	}
	if got := asStrings(req["required"]); !slices.Equal(got, []string{"name", "command"}) {
		t.Errorf("WorkloadRequest requires %v, want [name command]", got)
	}
}

// TestOpenAPIRoutes checks that the document and the router agree: every
// documented operation is served, every served route is documented, unknown
// paths answer 404 and other methods 405 with Allow, as documented.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := doc.operations()
	want := slices.Clone(served)
	sortRoutes(want)
	for _, r := range want {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not documented", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(want, r) {
			t.Errorf("%s is documented but not in the list of served routes", r)
		}
	}

	h := newHarness(t, twoNodes...)
	w := h.create(t, validBody)
	fill := strings.NewReplacer("{name}", "n1", "{id}", w.ID)
	mna, err := doc.componentResponse("MethodNotAllowed")
	if err != nil {
		t.Fatal(err)
	}
	notFound, err := doc.componentResponse("NotFound")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("documented operations are served", func(t *testing.T) {
		// DELETE last, so the workload exists for the GETs.
		ops := slices.Clone(documented)
		slices.SortStableFunc(ops, func(a, b route) int { return boolInt(a.method == "DELETE") - boolInt(b.method == "DELETE") })
		for _, r := range ops {
			t.Run(r.String(), func(t *testing.T) {
				resp := h.do(r.method, fill.Replace(r.path), validBody)
				if resp.status == http.StatusNotFound && bytes.Contains(resp.body, []byte("no such endpoint")) ||
					resp.status == http.StatusMethodNotAllowed {
					t.Fatalf("the router does not serve it: %d\n%s", resp.status, resp.body)
				}
				if resp.status >= 500 {
					t.Errorf("status %d:\n%s", resp.status, resp.body)
				}
			})
		}
	})

	t.Run("other methods answer 405", func(t *testing.T) {
		byPath := map[string][]string{}
		for _, r := range documented {
			byPath[r.path] = append(byPath[r.path], r.method)
		}
		for path, methods := range byPath {
			slices.Sort(methods)
			for _, m := range httpMethods {
				if slices.Contains(methods, m) {
					continue
				}
				t.Run(m+" "+path, func(t *testing.T) {
					resp := h.do(m, fill.Replace(path), "")
					msg := resp.wantError(t, http.StatusMethodNotAllowed, "method_not_allowed")
					if allow := resp.header.Get("Allow"); allow != strings.Join(methods, ", ") {
						t.Errorf("Allow %q, want %q (the documented methods)", allow, strings.Join(methods, ", "))
					}
					if !strings.Contains(msg, m+" is not allowed") {
						t.Errorf("message %q does not name the method", msg)
					}
					for _, p := range doc.checkResponse(mna, resp) {
						t.Error(p)
					}
				})
			}
		}
	})

	t.Run("unknown paths answer 404", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{"GET", "/"},
			{"GET", "/v1"},
			{"GET", "/v1/"},
			{"GET", "/v2/health"},
			{"GET", "/v1/healthz"},
			{"GET", "/v1/health/"},
			{"GET", "/v1/nodes/"},
			{"GET", "/v1/nodes/n1/workloads"},
			{"GET", "/v1/workloads/"},
			{"POST", "/v1/workloads/x/restart"},
			{"PUT", "/v1/plans"},
		} {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				resp := h.do(c.method, c.path, "")
				msg := resp.wantError(t, http.StatusNotFound, "not_found")
				if !strings.Contains(msg, c.path) {
					t.Errorf("message %q does not name the path", msg)
				}
				for _, p := range doc.checkResponse(notFound, resp) {
					t.Error(p)
				}
			})
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestOpenAPIResponses calls every documented operation through the real
// handler and scheduler, for every documented status, and validates each
// answer against the documented schema. A status the handler returns that
// the document does not list fails, and so does a documented status no case
// produces.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	h := newHarness(t, twoNodes...)
	h.agents.refuse["/no/such/program"] = "exec: no such file or directory"
	kept := h.create(t, `{"name":"kept","command":["/bin/sleep","1000"],"env":{"A":"1"},"workdir":"/srv",
		"resources":{"cpu_millis":100,"memory_mb":64},"constraints":{"nodes":["n1","n2"],"avoid_nodes":["n3"],
		"labels":{"zone":"a"},"anti_affinity":["other"]}}`)
	delOK := h.create(t, `{"name":"del-ok","command":["/bin/sleep","1000"],"constraints":{"nodes":["n1"]}}`)
	delLater := h.create(t, `{"name":"del-later","command":["/bin/sleep","1000"],"constraints":{"nodes":["n2"]}}`)
	h.agents.mute["n2"] = true
	h.agents.setSilent("n2", true)
	failing := newHarness(t, twoNodes...)
	failing.store.failPuts.Store(true)
	follower := newHarness(t, twoNodes...)
	followerKept := follower.create(t, `{"name":"f","command":["/bin/sleep","1000"]}`)
	if err := follower.srv.SetLeadership(context.Background(), false, 0, "server-b"); err != nil {
		t.Fatal(err)
	}

	// A migration that has run to its end, and one more workload to move.
	moved := h.create(t, `{"name":"moved","command":["/bin/sleep","1000"],"constraints":{"nodes":["n1","n2"]}}`)
	mig, err := h.srv.StartMigration(context.Background(), moved.ID, scheduler.MigrationRequest{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for m, _ := h.srv.Migration(mig.ID); m.EndedAt.IsZero(); m, _ = h.srv.Migration(mig.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("migration %s did not end: %+v", mig.ID, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.create(t, `{"name":"mover","command":["/bin/sleep","1000"],"constraints":{"nodes":["n1","n2"]}}`)

	cases := []struct {
		name  string
		h     *harness // nil: h
		route route
		path  string // "": route.path
		body  string
		want  int
	}{
		{"health", nil, route{"GET", "/v1/health"}, "", "", 200},
		{"document", nil, route{"GET", "/v1/openapi.json"}, "", "", 200},
		{"nodes", nil, route{"GET", "/v1/nodes"}, "", "", 200},
		{"node", nil, route{"GET", "/v1/nodes/{name}"}, "/v1/nodes/n1", "", 200},
		{"unknown node", nil, route{"GET", "/v1/nodes/{name}"}, "/v1/nodes/n9", "", 404},
		{"workloads", nil, route{"GET", "/v1/workloads"}, "", "", 200},
		{"create", nil, route{"POST", "/v1/workloads"}, "", `{"name":"new","command":["/bin/true"],"constraints":{"nodes":["n1"]}}`, 201},
		{"create unconfirmed", nil, route{"POST", "/v1/workloads"}, "", `{"name":"slow","command":["/bin/true"],"constraints":{"nodes":["n2"]}}`, 201},
		{"create invalid", nil, route{"POST", "/v1/workloads"}, "", `{"name":"new"}`, 400},
		{"create duplicate", nil, route{"POST", "/v1/workloads"}, "", `{"name":"kept","command":["/bin/true"]}`, 409},
		{"create no fit", nil, route{"POST", "/v1/workloads"}, "", `{"name":"huge","command":["/bin/true"],"resources":{"memory_mb":1048576}}`, 422},
		{"create store fails", failing, route{"POST", "/v1/workloads"}, "", validBody, 500},
		{"create agent refuses", nil, route{"POST", "/v1/workloads"}, "", `{"name":"bad","command":["/no/such/program"]}`, 502},
		{"create on a follower", follower, route{"POST", "/v1/workloads"}, "", validBody, 503},
		{"delete on a follower", follower, route{"DELETE", "/v1/workloads/{id}"}, "/v1/workloads/" + followerKept.ID, "", 503},
		{"workload", nil, route{"GET", "/v1/workloads/{id}"}, "/v1/workloads/" + kept.ID, "", 200},
		{"unknown workload", nil, route{"GET", "/v1/workloads/{id}"}, "/v1/workloads/w-000000000000", "", 404},
		{"delete", nil, route{"DELETE", "/v1/workloads/{id}"}, "/v1/workloads/" + delOK.ID, "", 200},
		{"delete unconfirmed", nil, route{"DELETE", "/v1/workloads/{id}"}, "/v1/workloads/" + delLater.ID, "", 202},
		{"delete unknown", nil, route{"DELETE", "/v1/workloads/{id}"}, "/v1/workloads/w-000000000000", "", 404},
		{"workloads while deleting", nil, route{"GET", "/v1/workloads"}, "", "", 200},
		{"migrations", nil, route{"GET", "/v1/migrations"}, "", "", 200},
		{"migration", nil, route{"GET", "/v1/migrations/{id}"}, "/v1/migrations/" + mig.ID, "", 200},
		{"unknown migration", nil, route{"GET", "/v1/migrations/{id}"}, "/v1/migrations/m-000000000000", "", 404},
		{"migrate", nil, route{"POST", "/v1/workloads/{id}/migrate"}, "/v1/workloads/mover/migrate", `{"mode":"stop-copy"}`, 202},
		{"migrate bad mode", nil, route{"POST", "/v1/workloads/{id}/migrate"}, "/v1/workloads/" + kept.ID + "/migrate", `{"mode":"teleport"}`, 400},
		{"migrate unknown", nil, route{"POST", "/v1/workloads/{id}/migrate"}, "/v1/workloads/nobody/migrate", ``, 404},
		{"migrate while deleting", nil, route{"POST", "/v1/workloads/{id}/migrate"}, "/v1/workloads/" + delLater.ID + "/migrate", ``, 409},
		{"migrate pre-copy without dirty tracking", nil, route{"POST", "/v1/workloads/{id}/migrate"}, "/v1/workloads/" + kept.ID + "/migrate", `{"mode":"pre-copy"}`, 422},
		{"migrate on a follower", follower, route{"POST", "/v1/workloads/{id}/migrate"}, "/v1/workloads/" + followerKept.ID + "/migrate", ``, 503},
		{"plan fits", nil, route{"POST", "/v1/plan"}, "", `{"name":"p","command":["/bin/true"],"resources":{"memory_mb":6144}}`, 200},
		{"plan no fit", nil, route{"POST", "/v1/plan"}, "", `{"name":"p","command":["/bin/true"],"resources":{"memory_mb":1048576}}`, 200},
		{"plan invalid", nil, route{"POST", "/v1/plan"}, "", `{"name":"p","command":["/bin/true"],"strategy":"random"}`, 400},

		{"create group", nil, route{"POST", "/v1/groups"}, "", `{"name":"db","nodes":["n1"],"failback":"manual","failure_threshold":2,"failure_timeout":"10m",
			"resources":[{"name":"pg","kind":"process","command":["/bin/sleep","1000"],"env":{"A":"1"},"workdir":"/srv","resources":{"cpu_millis":100,"memory_mb":64},
			"monitor":{"command":["/bin/true"],"interval":"1s","timeout":"500ms","restarts":1}}]}`, 201},
		{"create group anywhere", nil, route{"POST", "/v1/groups"}, "", `{"name":"web","nodes":["n1","n2"],"resources":[{"name":"app","command":["/bin/sleep","1000"]}]}`, 201},
		{"create group invalid", nil, route{"POST", "/v1/groups"}, "", `{"name":"db_1","resources":[]}`, 400},
		{"create group duplicate", nil, route{"POST", "/v1/groups"}, "", `{"name":"db","resources":[{"name":"pg","command":["/bin/true"]}]}`, 409},
		{"create group on a follower", follower, route{"POST", "/v1/groups"}, "", `{"name":"db","resources":[{"name":"pg","command":["/bin/true"]}]}`, 503},
		{"groups", nil, route{"GET", "/v1/groups"}, "", "", 200},
		{"groups on a follower", follower, route{"GET", "/v1/groups"}, "", "", 503},
		{"group", nil, route{"GET", "/v1/groups/{name}"}, "/v1/groups/db", "", 200},
		{"unknown group", nil, route{"GET", "/v1/groups/{name}"}, "/v1/groups/nope", "", 404},
		{"group on a follower", follower, route{"GET", "/v1/groups/{name}"}, "/v1/groups/db", "", 503},
		{"move group", nil, route{"POST", "/v1/groups/{name}/move"}, "/v1/groups/web/move", `{"node":"n2"}`, 202},
		{"move group to a node it may not use", nil, route{"POST", "/v1/groups/{name}/move"}, "/v1/groups/db/move", `{"node":"n2"}`, 409},
		{"move group bad node", nil, route{"POST", "/v1/groups/{name}/move"}, "/v1/groups/db/move", `{"node":"a.b"}`, 400},
		{"move unknown group", nil, route{"POST", "/v1/groups/{name}/move"}, "/v1/groups/nope/move", `{"node":"n2"}`, 404},
		{"move group on a follower", follower, route{"POST", "/v1/groups/{name}/move"}, "/v1/groups/db/move", ``, 503},
		{"reset group", nil, route{"POST", "/v1/groups/{name}/reset"}, "/v1/groups/db/reset", `{"node":"n1"}`, 200},
		{"reset unknown group", nil, route{"POST", "/v1/groups/{name}/reset"}, "/v1/groups/nope/reset", ``, 404},
		{"reset group on a follower", follower, route{"POST", "/v1/groups/{name}/reset"}, "/v1/groups/db/reset", ``, 503},
		{"quorum", nil, route{"GET", "/v1/quorum"}, "", "", 200},
		{"quorum on a follower", follower, route{"GET", "/v1/quorum"}, "", "", 503},
		{"votes", nil, route{"PUT", "/v1/nodes/{name}/votes"}, "/v1/nodes/n2/votes", `{"votes":2}`, 200},
		{"votes missing", nil, route{"PUT", "/v1/nodes/{name}/votes"}, "/v1/nodes/n2/votes", `{}`, 400},
		{"votes negative", nil, route{"PUT", "/v1/nodes/{name}/votes"}, "/v1/nodes/n2/votes", `{"votes":-1}`, 400},
		{"votes of an unknown node", nil, route{"PUT", "/v1/nodes/{name}/votes"}, "/v1/nodes/n9/votes", `{"votes":1}`, 404},
		{"votes on a follower", follower, route{"PUT", "/v1/nodes/{name}/votes"}, "/v1/nodes/n1/votes", `{"votes":1}`, 503},
		{"delete group", nil, route{"DELETE", "/v1/groups/{name}"}, "/v1/groups/web", "", 202},
		{"delete unknown group", nil, route{"DELETE", "/v1/groups/{name}"}, "/v1/groups/nope", "", 404},
		{"delete group on a follower", follower, route{"DELETE", "/v1/groups/{name}"}, "/v1/groups/db", "", 503},
		{"fence a node", nil, route{"POST", "/v1/nodes/{name}/fence"}, "/v1/nodes/n1/fence", `{"confirm_off":true}`, 202},
		{"fence a bad node name", nil, route{"POST", "/v1/nodes/{name}/fence"}, "/v1/nodes/a.b/fence", ``, 400},
		{"fence an unknown node", nil, route{"POST", "/v1/nodes/{name}/fence"}, "/v1/nodes/n9/fence", ``, 404},
		{"fence on a follower", follower, route{"POST", "/v1/nodes/{name}/fence"}, "/v1/nodes/n1/fence", ``, 503},
		{"events", nil, route{"GET", "/v1/events"}, "/v1/events?since=2020-01-01T00:00:00Z", "", 200},
		{"events bad since", nil, route{"GET", "/v1/events"}, "/v1/events?since=yesterday", "", 400},
		// Last, as n2 takes no workload once drained.
		{"drain", nil, route{"POST", "/v1/nodes/{name}/drain"}, "/v1/nodes/n2/drain", "", 200},
		{"drain unknown", nil, route{"POST", "/v1/nodes/{name}/drain"}, "/v1/nodes/n9/drain", "", 404},
		{"drain on a follower", follower, route{"POST", "/v1/nodes/{name}/drain"}, "/v1/nodes/n1/drain", "", 503},
		{"nodes while draining", nil, route{"GET", "/v1/nodes"}, "", "", 200},
		{"rebalance plan while draining", nil, route{"GET", "/v1/rebalance/plan"}, "", "", 200},
		{"rebalance events", nil, route{"GET", "/v1/rebalance/events"}, "", "", 200},
		{"undrain", nil, route{"POST", "/v1/nodes/{name}/undrain"}, "/v1/nodes/n2/undrain", "", 200},
		{"undrain unknown", nil, route{"POST", "/v1/nodes/{name}/undrain"}, "/v1/nodes/n9/undrain", "", 404},
		{"undrain on a follower", follower, route{"POST", "/v1/nodes/{name}/undrain"}, "/v1/nodes/n1/undrain", "", 503},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hh := tc.h
			if hh == nil {
				hh = h
			}
			path := tc.path
			if path == "" {
				path = tc.route.path
			}
			resp := hh.do(tc.route.method, path, tc.body)
			resp.wantStatus(t, tc.want)
			seen[fmt.Sprintf("%s %d", tc.route, resp.status)] = true
			documented, err := doc.response(tc.route, resp.status)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range doc.checkResponse(documented, resp) {
				t.Error(p)
			}
		})
	}

	// Every documented status was produced by some case.
	for _, r := range doc.operations() {
		op, _ := doc.operation(r)
		for status := range op["responses"].(map[string]any) {
			if key := r.String() + " " + status; !seen[key] {
				t.Errorf("no case produces the documented response %s", key)
			}
		}
	}
}

// TestRequestSchemaAgreesWithServer sends bodies that the request schema
// accepts or rejects and checks that the server agrees: the schema neither
// forbids what the server takes nor allows what it refuses, for everything
// the schema can express.
func TestRequestSchemaAgreesWithServer(t *testing.T) {
	doc := loadOpenAPI(t)
	schema := map[string]any{"$ref": "#/components/schemas/WorkloadRequest"}
	cases := []struct {
		name  string
		body  string
		valid bool
	}{
		{"minimal", `{"name":"web","command":["/bin/true"]}`, true},
		{"everything", `{"name":"web.1","kind":"process","command":["/bin/sh","-c","true"],"env":{"A":"1"},"workdir":"/srv",
			"resources":{"cpu_millis":1000,"memory_mb":512},"constraints":{"nodes":["n1"],"avoid_nodes":["n2"],
			"labels":{"zone":"a"},"anti_affinity":["db"]},"strategy":"spread"}`, true},
		{"largest resources", `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":1048576,"memory_mb":16777216}}`, true},
		{"unknown field", `{"name":"web","command":["/bin/true"],"replicas":2}`, false},
		{"unknown resource", `{"name":"web","command":["/bin/true"],"resources":{"gpus":1}}`, false},
		{"unknown constraint", `{"name":"web","command":["/bin/true"],"constraints":{"rack":"r1"}}`, false},
		{"missing name", `{"command":["/bin/true"]}`, false},
		{"missing command", `{"name":"web"}`, false},
		{"empty command", `{"name":"web","command":[]}`, false},
		{"bad name", `{"name":"-web","command":["/bin/true"]}`, false},
		{"negative memory", `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":-1}}`, false},
		{"absurd cpu", `{"name":"web","command":["/bin/true"],"resources":{"cpu_millis":1048577}}`, false},
		{"absurd memory", `{"name":"web","command":["/bin/true"],"resources":{"memory_mb":16777217}}`, false},
		{"unknown kind", `{"name":"web","kind":"vm","command":["/bin/true"]}`, false},
		{"unknown strategy", `{"name":"web","command":["/bin/true"],"strategy":"random"}`, false},
		{"priority", `{"name":"web","command":["/bin/true"],"priority":-100}`, true},
		{"priority too high", `{"name":"web","command":["/bin/true"],"priority":101}`, false},
		{"priority not an integer", `{"name":"web","command":["/bin/true"],"priority":1.5}`, false},
		{"relative workdir", `{"name":"web","command":["/bin/true"],"workdir":"srv"}`, false},
		{"node name with a dot", `{"name":"web","command":["/bin/true"],"constraints":{"nodes":["a.b"]}}`, false},
		{"empty anti-affinity name", `{"name":"web","command":["/bin/true"],"constraints":{"anti_affinity":[""]}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			problems := doc.validate(schema, mustParse(t, tc.body), "$", false)
			if (len(problems) == 0) != tc.valid {
				t.Errorf("schema verdict %v, want valid=%v", problems, tc.valid)
			}
			h := newHarness(t, twoNodes...)
			resp := h.do("POST", "/v1/plan", tc.body)
			if (resp.status == http.StatusOK) != tc.valid {
				t.Errorf("server answered %d, want valid=%v:\n%s", resp.status, tc.valid, resp.body)
			}
		})
	}
}
