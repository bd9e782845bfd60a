// Package apitype holds the request and response bodies and the header
// names of Loopcard's HTTPS /v1 API: what a client (a terminal, a store
// client, a cardholder page, HQ's tools) sends and reads. It is a leaf: it
// imports the standard library and the wire formats it embeds
// (keydelivery's wrapped keys, handover's custody log entries), never the
// server package api, the database or the HSM, so that a client builds
// without them. api/openapi.json describes the same types; its test holds
// the two together.
package apitype
