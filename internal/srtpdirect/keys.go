package srtpdirect

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/srtp/v3"
)

var (
	errKeyLog  = errors.New("srtpdirect: not a DTLS 1.2 key log line")
	errSuite   = errors.New("srtpdirect: unknown DTLS cipher suite")
	errProfile = errors.New("srtpdirect: unsupported SRTP protection profile")
)

// handshake is one DTLS handshake as seen on the socket: both randoms, who sent the
// ClientHello, and what the ServerHello chose.
type handshake struct {
	client, server [randomLen]byte
	haveServer     bool
	localIsClient  bool // the ClientHello left through the socket
	suite, profile uint16
}

const masterSecretLen = 48

// parseKeyLog reads one line of the NSS key log format that pion/dtls writes for DTLS 1.2:
// "CLIENT_RANDOM <client random> <master secret>", in hex.
func parseKeyLog(line []byte) (client [randomLen]byte, master []byte, err error) {
	f := bytes.Fields(line)
	if len(f) != 3 || string(f[0]) != "CLIENT_RANDOM" || len(f[1]) != 2*randomLen || len(f[2]) != 2*masterSecretLen {
		return client, nil, errKeyLog
	}
	if _, err := hex.Decode(client[:], f[1]); err != nil {
		return client, nil, errKeyLog
	}
	master = make([]byte, masterSecretLen)
	if _, err := hex.Decode(master, f[2]); err != nil {
		return client, nil, errKeyLog
	}
	return client, master, nil
}

// prfHash is the TLS 1.2 PRF hash of a cipher suite pion/dtls may negotiate: SHA-384 for
// the AES-256-GCM suites, SHA-256 for the others (RFC 5246 §5, RFC 5289).
func prfHash(suite uint16) (prf.HashFunc, error) {
	switch suite {
	case 0xc02c, 0xc030: // ECDHE_{ECDSA,RSA}_WITH_AES_256_GCM_SHA384
		return sha512.New384, nil
	case 0xc02b, 0xc02f, // ECDHE_{ECDSA,RSA}_WITH_AES_128_GCM_SHA256
		0xc00a, 0xc014, // ECDHE_{ECDSA,RSA}_WITH_AES_256_CBC_SHA
		0xcca8, 0xcca9, // ECDHE_{RSA,ECDSA}_WITH_CHACHA20_POLY1305_SHA256
		0xc0ac, 0xc0ae: // ECDHE_ECDSA_WITH_AES_128_CCM, _CCM_8
		return sha256.New, nil
	}
	return nil, fmt.Errorf("%w 0x%04x", errSuite, suite)
}

// exporter is RFC 5705's keying material exporter over a finished handshake, as pion/dtls
// computes it (State.ExportKeyingMaterial): no context, client random then server random.
type exporter struct {
	master []byte
	hs     *handshake
	hash   prf.HashFunc
}

func (e exporter) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("srtpdirect: exporter context unsupported")
	}
	seed := make([]byte, 0, len(label)+2*randomLen)
	seed = append(append(append(seed, label...), e.hs.client[:]...), e.hs.server[:]...)
	return prf.PHash(e.master, seed, length, e.hash)
}

// contexts makes the SRTP context that encrypts what this side sends and the one that
// decrypts what the peer sends (SRTCP replay-protected, as Pion's own), from the handshake's
// master secret, exactly as pion/webrtc keys its SRTP session (RFC 5764 §4.2).
func contexts(master []byte, hs *handshake) (enc, dec *srtp.Context, err error) {
	profile := srtp.ProtectionProfile(hs.profile)
	switch profile {
	case srtp.ProtectionProfileAes128CmHmacSha1_80, srtp.ProtectionProfileAes128CmHmacSha1_32,
		srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm:
	default:
		return nil, nil, fmt.Errorf("%w 0x%04x", errProfile, hs.profile)
	}
	hash, err := prfHash(hs.suite)
	if err != nil {
		return nil, nil, err
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(exporter{master: master, hs: hs, hash: hash}, hs.localIsClient); err != nil {
		return nil, nil, err
	}
	k := cfg.Keys
	if enc, err = srtp.CreateContext(k.LocalMasterKey, k.LocalMasterSalt, profile); err != nil {
		return nil, nil, err
	}
	dec, err = srtp.CreateContext(k.RemoteMasterKey, k.RemoteMasterSalt, profile, srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		return nil, nil, err
	}
	return enc, dec, nil
}

// srtcpReplayWindow is Pion's own (pion/srtp's SRTCP session default).
const srtcpReplayWindow = 64
