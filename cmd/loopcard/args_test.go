package main

import (
	"io"
	"strings"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	tests := []struct{ in, want string }{
		// Flags after the argument move before it.
		{"batch show 1 --organizer 1 --json", "batch show --organizer 1 --json 1"},
		{"batch show --organizer 1 1 --json", "batch show --organizer 1 --json 1"},
		{"audit verify DIR --hq-key K --json", "audit verify --hq-key K --json DIR"},
		{"audit verify DIR --since=C", "audit verify --since=C DIR"},
		{"handover card sold 1-00001 1-00002 --store S --key-file F", "handover card sold --store S --key-file F 1-00001 1-00002"},
		{"keys import app-debit --component a --component b --new-version", "keys import --component a --component b --new-version app-debit"},
		// Global flags before the command stay; their values are not commands.
		{"--data-dir batch batch show 1 --json", "--data-dir batch batch show --json 1"},
		// An unknown flag moves too, for urfave/cli to refuse; it takes no value.
		{"batch show 1 --colour blue", "batch show --colour 1 blue"},
		// "-" is an argument; after "--" everything is.
		{"handover card sold 1-00001 -- --store", "handover card sold -- 1-00001 --store"},
		{"keys rotate - --json", "keys rotate --json -"},
		// Not a command without subcommands: as it is.
		{"handover card 1-00001 --store S", "handover card 1-00001 --store S"},
		{"nosuch 1 --json", "nosuch 1 --json"},
		{"-- batch show 1 --json", "-- batch show 1 --json"},
		{"batch show 1 --json --generate-bash-completion", "batch show --json 1 --generate-bash-completion"},
		// A last flag without its value stays last, to be refused.
		{"batch show 1 --organizer", "batch show --organizer"},
		{"", ""},
	}
	for _, tc := range tests {
		args := append([]string{"loopcard"}, strings.Fields(tc.in)...)
		got := strings.Join(flagsFirst(app, args)[1:], " ")
		if got != tc.want {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
