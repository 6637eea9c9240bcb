// Package auth authenticates the parties a p2pcast hub talks to.
//
// Devices prove they hold an Ed25519 key by signing a random challenge; the
// hub keeps only the public half, so its data directory holds nothing that
// lets anyone impersonate a device. Viewers present tokens: JWTs signed with
// Ed25519 (EdDSA) by one of the hub's keys (a set with kids, rotated, published
// as a JWK Set) or by an external issuer the hub trusts (jwt.go, keyset.go,
// jwks.go); a token names the devices and the grants (view, talk, control,
// files) it allows and always expires. TURN
// credentials use the TURN REST API scheme (draft-uberti-behave-turn-rest),
// which is what coturn's use-auth-secret and pion/turn's
// LongTermTURNRESTAuthHandler verify, so the hub can hand out credentials
// for its embedded TURN server or for an external coturn alike.
//
// Store keeps the hub's keys and the device registry in its data directory.
package auth

import "errors"

// Errors callers can tell apart with errors.Is. Returned errors wrap these
// with detail, but never include secret material or token text.
var (
	// ErrMalformed: a token, TURN username or claim set is not well formed.
	ErrMalformed = errors.New("auth: malformed")
	// ErrBadSignature: a signature does not verify for the given key.
	ErrBadSignature = errors.New("auth: bad signature")
	// ErrExpired: a token or TURN credential is past its expiry.
	ErrExpired = errors.New("auth: expired")
	// ErrNotYetValid: a token's nbf or iat is in the future beyond the allowed clock skew.
	ErrNotYetValid = errors.New("auth: not yet valid")
	// ErrTooLong: a token exceeds MaxTokenLen; checked before anything else.
	// Verify's other errors are in jwt.go.
	ErrTooLong = errors.New("auth: token too long")
	// ErrUnknownGrant: ParseGrants met a grant name it does not know.
	ErrUnknownGrant = errors.New("auth: unknown grant")
	// ErrBadDeviceKey: a device key's text form is not valid.
	ErrBadDeviceKey = errors.New("auth: malformed device key")
	// ErrBadChallenge: a challenge's text form is not valid.
	ErrBadChallenge = errors.New("auth: malformed challenge")
	// ErrBadDeviceID: a device ID does not match DeviceIDPattern.
	ErrBadDeviceID = errors.New("auth: invalid device id")
	// ErrDeviceExists: AddDevice was asked for an ID already enrolled.
	ErrDeviceExists = errors.New("auth: device already enrolled")
	// ErrUnknownDevice: the device ID is not enrolled.
	ErrUnknownDevice = errors.New("auth: unknown device")
)
