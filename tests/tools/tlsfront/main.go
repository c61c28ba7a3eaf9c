// tlsfront is the TLS endpoint the MDM tests put in front of NanoMDM, as a load balancer is in
// production: it makes a private CA and a server certificate for 127.0.0.1 (the CA written to
// -ca-out for the client to trust), terminates TLS on -listen and forwards every request to
// -upstream. With -cert-header it asks for a client certificate and passes it on URL-escaped
// PEM in that header, which is how NanoMDM's -cert-header mode learns the device's identity
// when the profile says SignMessage false. Standard library only.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve TLS on")
	upstream := flag.String("upstream", "", "the server behind (http://...)")
	caOut := flag.String("ca-out", "", "where to write the CA certificate (PEM)")
	header := flag.String("cert-header", "", "pass the client certificate in this header")
	flag.Parse()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsfront test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	check(err)
	ca, err := x509.ParseCertificate(caDER)
	check(err)
	check(os.WriteFile(*caOut, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644))

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	check(err)

	target, err := url.Parse(*upstream)
	check(err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *header != "" {
			r.Header.Del(*header)
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.TLS.PeerCertificates[0].Raw})
				r.Header.Set(*header, url.QueryEscape(string(p)))
			}
		}
		proxy.ServeHTTP(w, r)
	})
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
	if *header != "" {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	ln, err := tls.Listen("tcp", *listen, cfg)
	check(err)
	log.Printf("serving %s", ln.Addr())
	check(http.Serve(ln, handler))
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
