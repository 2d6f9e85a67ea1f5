// Package httpapi serves Baton's REST API (JSON over HTTP) on top of the
// scheduler. It owns request decoding, the mapping of the scheduler's errors
// to HTTP statuses, and the OpenAPI document (openapi.json, served at
// /v1/openapi.json and tested against the handlers).
//
// Every error body has the form {"error":{"code":"...","message":"..."}}.
package httpapi
