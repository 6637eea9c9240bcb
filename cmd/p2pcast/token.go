package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/p2pcast/p2pcast/internal/auth"
)

// stateDir is p2pcast's state directory for role (hub, device): $XDG_STATE_HOME/p2pcast/ROLE,
// or ~/.local/state/p2pcast/ROLE.
func stateDir(role string) string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "p2pcast", role)
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "p2pcast", role)
	}
	return "p2pcast-" + role
}

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "revoke":
			return runTokenRevoke(args[1:], stdout, stderr)
		case "key":
			return runTokenKey(args[1:], stdout, stderr)
		}
	}
	fs := newFlags("token", "token --data DIR --device ID[,ID…|*] --grant view[,talk,control,files] --ttl 1h\n"+
		"       p2pcast token revoke ID|TOKEN --data DIR   (end its sessions; refuse it from now on)\n"+
		"       p2pcast token key --data DIR               (print the key that verifies these tokens, for device --hub-token-key)", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's data directory (its signing key)")
	devices := fs.String("device", "", "device id(s) the token may reach, comma-separated, or * for all")
	grants := fs.String("grant", "view", "rights: view, talk, control, files (comma-separated)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (at most 720h)")
	subject := fs.String("subject", "", "label for the audit log (who the token is for)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *devices == "" {
		return fmt.Errorf("%w: --device is required", errUsage)
	}
	g, err := auth.ParseGrants(*grants)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *ttl <= 0 || *ttl > auth.MaxLifetime {
		return fmt.Errorf("%w: --ttl %s: want more than 0 and at most %s", errUsage, *ttl, auth.MaxLifetime)
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	now := time.Now()
	var ids []string
	for _, d := range strings.Split(*devices, ",") {
		ids = append(ids, strings.TrimSpace(d))
	}
	tok, err := auth.Mint(store.TokenKey(), auth.Claims{Devices: ids, Grants: g, IssuedAt: now, Expires: now.Add(*ttl), Subject: *subject})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(stderr, "token for %s, grants %s, expires %s\n", *devices, *grants, now.Add(*ttl).UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, tok)
	return nil
}

// runTokenRevoke adds a token to the store's revocation list. The hub (and a device, for its
// own LAN tokens) rereads the list every second, ends the token's sessions and refuses it.
func runTokenRevoke(args []string, _ io.Writer, stderr io.Writer) error {
	fs := newFlags("token revoke", "token revoke ID|TOKEN --data DIR", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's (or device's) data directory")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return fmt.Errorf("%w: token revoke takes one token id (the audit log's token_id) or the token itself", errUsage)
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	id, until := positional[0], time.Now().Add(auth.MaxLifetime)
	if strings.HasPrefix(id, auth.TokenPrefix) {
		// The token itself: its id, and its expiry (after which the list may forget it).
		c, err := auth.Verify(store.TokenPublicKey(), id, time.Now())
		if errors.Is(err, auth.ErrExpired) {
			fmt.Fprintln(stderr, "that token has expired already: nothing to revoke")
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v (a token not valid yet is revoked by its id, the audit log's token_id)", errUsage, err)
		}
		id, until = c.ID, c.Expires
	}
	if err := store.Revoke(id, until); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(stderr, "token %s revoked; its sessions end within seconds\n", id)
	return nil
}

// runTokenKey prints the public key that verifies the store's tokens: a device given it
// (--hub-token-key) checks the hub's tokens offline on its own endpoints.
func runTokenKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token key", "token key --data DIR", stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's (or device's) data directory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	store, err := auth.OpenStore(*dataDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, auth.FormatTokenKey(store.TokenPublicKey()))
	return nil
}
