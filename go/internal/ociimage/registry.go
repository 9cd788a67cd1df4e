package ociimage

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options are the registry settings shared by build (for a registry base),
// push and copy.
type Options struct {
	// Insecure talks plain HTTP to every registry. go-containerregistry
	// already does so for localhost, loopback and private (RFC 1918)
	// addresses; this is for other plain-HTTP hosts.
	Insecure bool
}

// Timeouts for one registry connection. There is no limit on a whole
// transfer, which can rightly take long for big layers; these catch a
// registry that is unreachable or stops answering.
const (
	dialTimeout           = 15 * time.Second
	tlsHandshakeTimeout   = 15 * time.Second
	responseHeaderTimeout = 2 * time.Minute
)

var registryTransport = func() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	t.ResponseHeaderTimeout = responseHeaderTimeout
	return t
}()

// remoteOptions are the go-containerregistry options for every registry
// call: credentials from the Docker config (and credential helpers) as
// docker, podman and crane find them, and the transport above.
func remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithTransport(registryTransport),
		remote.WithUserAgent("polybuild-helper"),
	}
}

// parseRef parses a registry reference (tag or digest).
func parseRef(s string, opts Options) (name.Reference, error) {
	var nopts []name.Option
	if opts.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(s, nopts...)
	if err != nil {
		return nil, fmt.Errorf("bad image reference %q: %v", s, err)
	}
	return ref, nil
}

// registryError turns a go-containerregistry failure into one line that
// names the operation, the reference, the registry and what it answered,
// with a hint where the cause is usually the same.
func registryError(op string, ref name.Reference, err error) error {
	reg := ref.Context().RegistryStr()
	var terr *transport.Error
	var msg, hint string
	switch {
	case errors.As(err, &terr):
		msg = fmt.Sprintf("registry %s answered %d %s", reg, terr.StatusCode, http.StatusText(terr.StatusCode))
		if len(terr.Errors) > 0 {
			var ds []string
			for _, d := range terr.Errors {
				// Code and message only: the detail is free-form JSON that
				// would print as a Go map.
				ds = append(ds, fmt.Sprintf("%s: %s", d.Code, d.Message))
			}
			msg += " (" + strings.Join(ds, "; ") + ")"
		}
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = "check the credentials for " + reg + " in the Docker config (docker login, DOCKER_CONFIG)"
		case http.StatusNotFound:
			hint = "check the repository and tag"
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("cannot connect to registry %s: connection refused", reg)
		hint = "is the registry running on that address?"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		msg = fmt.Sprintf("registry %s did not answer in time: %v", reg, err)
	case ref.Context().Registry.Scheme() == "https" && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		// Only meaningful when HTTPS was all that was tried: for localhost
		// go-containerregistry tries HTTPS first and then HTTP, and the
		// first failure shows up in the message whatever the real cause.
		msg = fmt.Sprintf("registry %s speaks plain HTTP, not HTTPS", reg)
		hint = "pass --insecure for a plain-HTTP registry that is not on localhost"
	case isTLSError(err):
		msg = fmt.Sprintf("TLS with registry %s failed: %v", reg, err)
		hint = "trust its certificate (SSL_CERT_FILE) or, for a plain-HTTP registry, pass --insecure"
	default:
		msg = fmt.Sprintf("registry %s: %v", reg, err)
	}
	line := fmt.Sprintf("%s %s: %s", op, ref, msg)
	if hint != "" {
		line += "; hint: " + hint
	}
	return errors.New(oneLine(line))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLSError(err error) bool {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		strings.Contains(err.Error(), "tls: ")
}

// oneLine folds a message onto one line: callers parse stderr line-wise.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
