package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
		case "jwks":
			return runTokenJWKS(args[1:], stdout, stderr)
		case "keys":
			return runTokenKeys(args[1:], stdout, stderr)
		case "rotate-key":
			return runTokenRotateKey(args[1:], stdout, stderr)
		case "remove-key":
			return runTokenRemoveKey(args[1:], stdout, stderr)
		}
	}
	fs := newFlags("token", "token --data DIR --device ID[,ID…|*] --grant view[,talk,control,files] --ttl 1h   (prints a JWT)\n"+
		"       p2pcast token revoke ID|TOKEN --data DIR   (end its sessions; refuse it from now on)\n"+
		"       p2pcast token jwks --data DIR              (print the public keys that verify these tokens: a JWK Set, for device --hub-jwks)\n"+
		"       p2pcast token keys --data DIR              (list the signing keys: kid, created, until when each verifies)\n"+
		"       p2pcast token rotate-key --data DIR        (sign with a new key from now on; the old ones keep verifying)\n"+
		"       p2pcast token remove-key KID --data DIR    (refuse every token an old key signed)\n"+
		"       p2pcast token key --data DIR               (print the signing key's public half, p2pv1_…, for device --hub-token-key)", stderr)
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
	tok, err := store.MintToken(auth.Claims{Devices: ids, Grants: g, IssuedAt: now, Expires: now.Add(*ttl), Subject: *subject})
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
	if strings.HasPrefix(id, auth.LegacyTokenPrefix) {
		return fmt.Errorf("%w: %v", errUsage, auth.ErrLegacyToken)
	}
	if strings.Count(id, ".") == 2 {
		// The token itself: its id, and its expiry (after which the list may forget it).
		c, err := auth.Verify(store, id, time.Now())
		if errors.Is(err, auth.ErrExpired) {
			fmt.Fprintln(stderr, "that token has expired already: nothing to revoke")
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v (a token not valid yet, or an external issuer's, is revoked by its id: its jti, the audit log's token_id)", errUsage, err)
		}
		id, until = c.ID, c.Expires
	}
	if err := store.Revoke(id, until); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	fmt.Fprintf(stderr, "token %s revoked; its sessions end within seconds\n", id)
	return nil
}

// runTokenKey prints the public half of the store's signing key: a device given it
// (--hub-token-key) checks the hub's tokens offline on its own endpoints, until the hub
// rotates its key (a device given the JWK Set file, --hub-jwks, follows rotations).
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
	key, err := store.SigningKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, auth.FormatTokenKey(key.Private.Public().(ed25519.PublicKey)))
	return nil
}

// openTokenStore parses a token subcommand's --data flag and wants nargs positional
// arguments (what), then opens the store.
func openTokenStore(name, usage string, args []string, nargs int, what string, stderr io.Writer) (*auth.Store, []string, error) {
	fs := newFlags("token "+name, usage, stderr)
	dataDir := fs.String("data", defaultDataDir(), "the hub's (or device's) data directory")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if len(positional) != nargs {
		if nargs == 0 {
			return nil, nil, fmt.Errorf("%w: unexpected argument %q", errUsage, positional[0])
		}
		return nil, nil, fmt.Errorf("%w: token %s takes %s", errUsage, name, what)
	}
	store, err := auth.OpenStore(*dataDir)
	return store, positional, err
}

// runTokenJWKS prints the public keys that verify the store's tokens as a JWK Set: what the
// hub serves at /.well-known/jwks.json, for a device's --hub-jwks file or a backend.
func runTokenJWKS(args []string, stdout, stderr io.Writer) error {
	store, _, err := openTokenStore("jwks", "token jwks --data DIR", args, 0, "", stderr)
	if err != nil {
		return err
	}
	ks, err := store.VerifyKeys(time.Now())
	if err != nil {
		return err
	}
	_, err = stdout.Write(ks.JWKS())
	return err
}

// runTokenKeys lists the store's signing keys, oldest first.
func runTokenKeys(args []string, stdout, stderr io.Writer) error {
	store, _, err := openTokenStore("keys", "token keys --data DIR", args, 0, "", stderr)
	if err != nil {
		return err
	}
	list, err := store.TokenKeyList()
	if err != nil {
		return err
	}
	now := time.Now()
	for _, k := range list {
		state := "signing"
		switch until := k.Retired.Add(auth.MaxLifetime); {
		case k.Signing:
		case now.After(until):
			state = "expired: verifies nothing (the next rotate-key drops it)"
		default:
			state = "verifies until " + until.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s  created %s  %s\n", k.KID, k.Created.UTC().Format(time.RFC3339), state)
	}
	return nil
}

// runTokenRotateKey adds a new signing key. Hubs on the data directory sign with it from
// their next token on and keep accepting the old keys' tokens.
func runTokenRotateKey(args []string, stdout, stderr io.Writer) error {
	store, _, err := openTokenStore("rotate-key", "token rotate-key --data DIR", args, 0, "", stderr)
	if err != nil {
		return err
	}
	kid, err := store.RotateTokenKey()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "new signing key %s. Tokens of the older keys stay valid until they expire (at most %s),\n"+
		"or until `p2pcast token remove-key KID`. Devices verifying offline need the new set: `p2pcast token jwks`.\n", kid, auth.MaxLifetime)
	fmt.Fprintln(stdout, kid)
	return nil
}

// runTokenRemoveKey removes an old signing key: its tokens are refused from then on.
func runTokenRemoveKey(args []string, _, stderr io.Writer) error {
	store, pos, err := openTokenStore("remove-key", "token remove-key KID --data DIR", keyIDArgs(args), 1, "one key id (p2pcast token keys lists them)", stderr)
	if err != nil {
		return err
	}
	if err := store.RemoveTokenKey(pos[0]); err != nil {
		if errors.Is(err, auth.ErrUnknownKey) || errors.Is(err, auth.ErrSigningKey) {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return err
	}
	fmt.Fprintf(stderr, "key %s removed: the tokens it signed are refused from now on\n", pos[0])
	return nil
}

// keyIDArgs puts "--" before a key id that begins with "-": a key id is a JWK thumbprint
// (43 characters of base64url), which begins with "-" one time in 64, and the flag parser
// would take it for a flag. No flag of the token commands is that long.
func keyIDArgs(args []string) []string {
	for i, a := range args {
		if a == "--" {
			return args
		}
		if strings.HasPrefix(a, "-") && isThumbprint(a) {
			return slices.Concat(args[:i:i], []string{"--"}, args[i:])
		}
	}
	return args
}

// isThumbprint: s has the shape of a SHA-256 JWK thumbprint (RFC 7638), unpadded base64url.
func isThumbprint(s string) bool {
	if len(s) != 43 {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
