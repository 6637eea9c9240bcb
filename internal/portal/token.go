package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxTokenFile bounds what loadToken reads: a token is a UUID-sized string.
const maxTokenFile = 16 << 10

// savedToken is the token file's content. A token restores a session of the interface that
// issued it only, so the interface is kept with it.
type savedToken struct {
	Interface string `json:"interface"`
	Token     string `json:"restore_token"`
}

// loadToken reads the token file; a missing file is no token.
func loadToken(path string) (savedToken, error) {
	var t savedToken
	if path == "" {
		return t, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return t, fmt.Errorf("portal: reading the restore token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return t, fmt.Errorf("portal: reading the restore token: %w", err)
	}
	return parseToken(b)
}

func parseToken(b []byte) (savedToken, error) {
	var t savedToken
	if len(b) > maxTokenFile {
		return savedToken{}, fmt.Errorf("portal: the restore token file is larger than %d bytes", maxTokenFile)
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return savedToken{}, fmt.Errorf("portal: the restore token file is not valid: %w", err)
	}
	return t, nil
}

// saveToken writes the token file atomically (a temporary file renamed over it), readable by
// its owner only: the token lets its holder share the screen without asking.
func saveToken(path string, t savedToken) (err error) {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("portal: saving the restore token: %w", err)
	}
	f, err := os.CreateTemp(dir, ".portal-token-*")
	if err != nil {
		return fmt.Errorf("portal: saving the restore token: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			err = fmt.Errorf("portal: saving the restore token to %s: %w", path, err)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// removeToken forgets a token that is spent or refused.
func removeToken(path string) error {
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("portal: removing the spent restore token: %w", err)
	}
	return nil
}
