// Package natsbus starts the embedded NATS server that `baton server` and
// `baton dev` run by default, and opens client connections with the settings
// every Baton process shares. A multi-machine deployment points Baton at an
// existing NATS cluster instead and never uses Embedded.
package natsbus
